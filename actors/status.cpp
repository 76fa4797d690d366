#include "actors/spawn.hpp"
#include "actors/status.hpp"

#include <algorithm>
#include <utility>

#include <caf/spawn_options.hpp>

#include "messages/error.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq {

namespace {

std::string refusal(const std::string& from, const std::string& to) {
  return "Cannot set status from " + from + " to " + to;
}

/// The state machine as the status actor applies it to writes (header comment).
bool write_allowed(const std::string& from_text, const std::string& to_text) {
  auto from = job::parse_status(from_text);
  auto to = job::parse_status(to_text);
  if (!from || !to)
    return false;
  if (*from == job::status::running && *to == job::status::running)
    return true;
  return job::can_transition(*from, *to);
}

bool requeue_allowed(const std::string& from, const std::string& to) {
  return to == "pending" && (from.empty() || from == "running" || from == "pending");
}

const std::string* find_field(const field_pairs& xs, const std::string& name) {
  for (const auto& [k, v] : xs)
    if (k == name)
      return &v;
  return nullptr;
}

/// `record` after a write that sets `set` and deletes `del`.
void overlay(field_pairs& record, const field_pairs& set, const std::vector<std::string>& del) {
  record.erase(std::remove_if(record.begin(), record.end(),
                              [&](const auto& kv) {
                                return std::find(del.begin(), del.end(), kv.first) != del.end();
                              }),
               record.end());
  for (const auto& [k, v] : set) {
    auto it = std::find_if(record.begin(), record.end(),
                           [&](const auto& kv) { return kv.first == k; });
    if (it != record.end())
      it->second = v;
    else
      record.emplace_back(k, v);
  }
}

/// "done,failed,skipped": the steps' statuses in order.
std::string step_statuses(const job::job& j) {
  std::string out;
  for (const auto& s : j.steps) {
    if (!out.empty())
      out += ',';
    out += job::to_string(s.status);
  }
  return out;
}

/// The SPEC §10 `job finished` line. `record` is the job's hash after the
/// final write when known (empty otherwise: only job_id, user and status).
void log_finished(const std::string& job_id, const std::string& user, const std::string& status,
                  const field_pairs& record, job::time_point now) {
  log::fields fs{{"job_id", job_id}, {"user", user}, {"status", status}};
  if (auto created = find_field(record, "created_at")) {
    if (auto t = job::parse_iso8601(*created)) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - *t).count();
      fs.emplace_back("elapsed_ms", std::to_string(ms));
    }
  }
  if (!record.empty()) {
    auto j = job::decode(job_id, record);
    if (j)
      fs.emplace_back("steps", step_statuses(*j));
  }
  log::info("job finished", fs);
  metrics::job_finished(status);
}

/// Errors that end a recover: the lease is gone, or Redis is.
bool fatal_for_recover(const caf::error& err) {
  return is(err, ec::lease_lost) || is(err, ec::redis_unavailable);
}

std::string render(const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? caf::to_string(err) : text;
}

/// Recovers one orphaned WIP entry (header comment, `recover`). Answers true
/// when a running job was recovered, false for a stale entry or a job left as
/// it is; an error only when fatal_for_recover.
caf::expected<bool> recover_job(status_state& st, const std::string& job_id,
                                const std::string& user, const std::string& token) {
  auto rec = st.store->read(job_id);
  if (!rec)
    return std::move(rec.error());
  auto owner = find_field(*rec, "user");
  auto status = find_field(*rec, "status");
  auto stale = [&](const char* why) -> caf::expected<bool> {
    if (auto r = st.store->remove_from_wip(job_id, user, token); !r)
      return std::move(r.error());
    log::info("stale work in progress removed",
              {{"job_id", job_id}, {"user", user}, {"reason", why}});
    return false;
  };
  if (rec->empty())
    return stale("no such job");
  if (owner == nullptr || *owner != user)
    return stale("another user's job");
  if (status == nullptr || (*status != "pending" && *status != "running"))
    return stale(status ? status->c_str() : "no status");
  auto now = st.cfg.clock();
  if (*status == "pending") {
    // Dequeued by a worker that died before claiming it: back to the head of
    // the queue (the script does not duplicate an id already queued).
    state_write w{job_id, user, token, "pending", "pending",
                  {{"status", "pending"}, {"updated_at", job::iso8601(now)}}, {}};
    if (auto r = st.store->requeue(w); !r) {
      if (fatal_for_recover(r.error()))
        return std::move(r.error());
      log::warning("recover failed", {{"job_id", job_id}, {"user", user}, {"error", render(r.error())}});
      return false;
    }
    log::info("pending job in work in progress requeued", {{"job_id", job_id}, {"user", user}});
    return false;
  }
  // Running on a node that lost the lease: stop whatever still runs first.
  if (st.cfg.backend_cancel) {
    auto n = st.cfg.backend_cancel->cancel_backends_of_job(job_id, user);
    if (n)
      log::info("orphaned backends cancelled",
                {{"job_id", job_id}, {"user", user}, {"backends", std::to_string(*n)}});
    else
      log::warning("orphaned backends not cancelled",
                   {{"job_id", job_id}, {"user", user}, {"error", render(n.error())}});
  }
  auto j = job::decode(job_id, *rec);
  if (!j) {
    log::error("recover failed",
               {{"job_id", job_id}, {"user", user}, {"error", j.error().message}});
    return false;
  }
  auto node = j->node && !j->node->empty() ? *j->node : std::string{"unknown"};
  if (auto r = job::node_lost(*j, node, st.cfg.on_node_loss, now); !r) {
    log::error("recover failed", {{"job_id", job_id}, {"user", user}, {"error", r.error().message}});
    return false;
  }
  auto upd = job::state_fields(*j);
  std::string to = job::to_string(j->status);
  state_write w{job_id, user, token, "running", to, upd.set, upd.del};
  overlay(w.set, {{"status", to}}, {});
  bool requeued = j->status == job::status::pending;
  auto r = requeued ? st.store->requeue(w) : st.store->write(w, true, st.cfg.finished_jobs_ttl);
  if (!r) {
    if (fatal_for_recover(r.error()))
      return std::move(r.error());
    log::warning("recover failed", {{"job_id", job_id}, {"user", user}, {"error", render(r.error())}});
    return false;
  }
  st.running.erase(job_id);
  log::warning("job recovered", {{"job_id", job_id},
                                 {"user", user},
                                 {"node", node},
                                 {"outcome", requeued ? std::string{"requeued"} : to}});
  if (!requeued) {
    overlay(*rec, w.set, w.del);
    log_finished(job_id, user, to, *rec, now);
  }
  return true;
}

/// `recover` for every WIP entry of `user`; the count of running jobs recovered.
caf::expected<int32_t> recover_user(status_state& st, const std::string& user,
                                    const std::string& token) {
  auto ids = st.store->wip_jobs(user);
  if (!ids)
    return std::move(ids.error());
  int32_t count = 0;
  for (const auto& id : *ids) {
    auto r = recover_job(st, id, user, token);
    if (!r)
      return std::move(r.error());
    if (*r)
      ++count;
  }
  return count;
}

} // namespace

status_actor::behavior_type status_behavior(status_actor::stateful_pointer<status_state> self,
                                            std::shared_ptr<ports::job_store> store,
                                            status_settings cfg) {
  self->state.store = std::move(store);
  self->state.cfg = std::move(cfg);
  return {
    [=](dequeue_atom, const std::string& user,
        const std::string& lease_token) -> caf::result<job_ticket> {
      auto& st = self->state;
      field_pairs claim{{"status", "running"},
                        {"node", st.cfg.node_id},
                        {"updated_at", job::iso8601(st.cfg.clock())}};
      auto t = st.store->dequeue(user, lease_token, claim);
      if (!t)
        return std::move(t.error());
      t->user = user;
      t->lease_token = lease_token;
      if (!t->job_id.empty()) {
        st.running[t->job_id] = t->record;
        log::debug("job dequeued", {{"job_id", t->job_id}, {"user", user}});
      }
      return std::move(*t);
    },
    [=](write_atom, state_write& w) -> caf::result<bool> {
      auto& st = self->state;
      if (!write_allowed(w.from_status, w.to_status))
        return make_error(ec::invalid_transition, refusal(w.from_status, w.to_status));
      // The status field written is the declared one, whatever `set` says.
      overlay(w.set, {{"status", w.to_status}}, {});
      auto final = job::is_final(*job::parse_status(w.to_status));
      auto r = st.store->write(w, final, st.cfg.finished_jobs_ttl);
      auto it = st.running.find(w.job_id);
      if (!r) {
        // The job is no longer ours to write (lease lost, changed or gone):
        // forget it; a transient Redis error keeps it for the writer's retry.
        if (it != st.running.end() && !is(r.error(), ec::redis_unavailable))
          st.running.erase(it);
        return std::move(r.error());
      }
      if (it != st.running.end())
        overlay(it->second, w.set, w.del);
      if (final) {
        log_finished(w.job_id, w.user, w.to_status,
                     it != st.running.end() ? it->second : field_pairs{}, st.cfg.clock());
        if (it != st.running.end())
          st.running.erase(it);
      }
      return true;
    },
    [=](requeue_atom, state_write& w) -> caf::result<bool> {
      auto& st = self->state;
      if (!requeue_allowed(w.from_status, w.to_status))
        return make_error(ec::invalid_transition, refusal(w.from_status, w.to_status));
      overlay(w.set, {{"status", "pending"}}, {});
      auto r = st.store->requeue(w);
      if (!r)
        return std::move(r.error());
      st.running.erase(w.job_id);
      log::debug("job requeued", {{"job_id", w.job_id}, {"user", w.user}});
      return true;
    },
    [=](cancel_atom, const std::string& job_id,
        const std::string& user) -> caf::result<pending_cancel> {
      auto& st = self->state;
      auto rec = st.store->read(job_id);
      if (!rec)
        return std::move(rec.error());
      auto owner = find_field(*rec, "user");
      if (rec->empty() || owner == nullptr || *owner != user)
        return make_error(ec::job_not_found, "Job with id " + job_id + " not found");
      auto status = find_field(*rec, "status");
      if (status == nullptr || *status != "pending") {
        auto node = find_field(*rec, "node");
        return pending_cancel{false, status ? *status : std::string{},
                              node ? *node : std::string{}};
      }
      auto j = job::decode(job_id, *rec);
      if (!j)
        return make_error(ec::invalid_job, j.error().message);
      auto now = st.cfg.clock();
      if (auto c = job::cancel(*j, now); !c)
        return make_error(ec::invalid_transition, c.error().message);
      auto upd = job::state_fields(*j);
      auto r = st.store->cancel_pending(job_id, user, upd.set, st.cfg.finished_jobs_ttl);
      if (!r)
        return std::move(r.error());
      if (!r->cancelled)
        return std::move(*r); // raced with a dequeue: status (and node) as now stored
      overlay(*rec, upd.set, upd.del);
      log_finished(job_id, user, "cancelled", *rec, now);
      return pending_cancel{true, "cancelled", {}};
    },
    [=](recover_atom, const std::string& user,
        const std::string& lease_token) -> caf::result<int32_t> {
      auto n = recover_user(self->state, user, lease_token);
      if (!n)
        return std::move(n.error());
      return *n;
    },
  };
}

status_actor spawn_status(caf::actor_system& sys, const status_settings& cfg,
                          std::shared_ptr<ports::job_store> store, bool detached) {
  return spawn_maybe_detached(sys, detached, status_behavior, std::move(store), cfg);
}

} // namespace batchq
