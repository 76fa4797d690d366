#include "actors/spawn.hpp"
#include "actors/status.hpp"

#include <algorithm>
#include <utility>

#include "messages/error.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"
#include "src/ports/turn_step.hpp"

namespace batchq {

namespace {

/// How many finished job ids are remembered against double `job finished` lines.
constexpr size_t logged_kept = 4096;

const std::string* find_field(const field_pairs& xs, const std::string& name) {
  for (const auto& [k, v] : xs)
    if (k == name)
      return &v;
  return nullptr;
}

using self_ptr = status_actor::stateful_pointer<status_state>;

/// Logs the `job finished` line of `job_id` once.
void finished_once(status_state& st, const std::string& job_id, const std::string& user,
                   const std::string& status, const field_pairs& record) {
  if (!st.logged.insert(job_id).second)
    return;
  st.logged_order.push_back(job_id);
  while (st.logged_order.size() > logged_kept) {
    st.logged.erase(st.logged_order.front());
    st.logged_order.pop_front();
  }
  ports::log_job_finished(job_id, user, status, record, st.cfg.clock());
}

/// What the answer (or the error) of a turn step means for the records kept.
void remember(status_state& st, const turn_request& r, const caf::expected<turn_answer>& a) {
  if (!r.write.empty()) {
    const auto& w = r.write.front();
    auto it = st.running.find(w.job_id);
    if (!a) {
      // The job is no longer ours to write (lease lost, changed or gone):
      // forget it; a transient Redis error keeps it for the writer's retry.
      if (it != st.running.end() && !is(a.error(), ec::redis_unavailable))
        st.running.erase(it);
    } else {
      field_pairs record;
      if (it != st.running.end()) {
        ports::overlay(it->second, w.set, w.del);
        record = it->second;
      }
      if (w.kind == write_kind::final)
        finished_once(st, w.job_id, r.user, w.to_status, record);
      if (w.kind != write_kind::progress && it != st.running.end())
        st.running.erase(it);
      if (w.kind == write_kind::requeue)
        log::debug("job requeued", {{"job_id", w.job_id}, {"user", r.user}});
    }
  }
  if (a && (a->what == turn_outcome::job || a->what == turn_outcome::recover))
    for (const auto& t : a->jobs) {
      st.running[t.job_id] = t.record;
      if (a->what == turn_outcome::job)
        st.logged.erase(t.job_id); // claimed again (requeued): may finish again
    }
}

} // namespace

status_actor::behavior_type status_behavior(status_actor::stateful_pointer<status_state> self,
                                            std::shared_ptr<ports::job_store> store,
                                            status_settings cfg) {
  self->state.store = std::move(store);
  self->state.cfg = std::move(cfg);
  const auto& c = self->state.cfg;
  self->state.rules = ports::turn_rules{c.node_id, c.finished_jobs_ttl, c.clock};
  return {
    [=](turn_atom, turn_request& r) -> caf::result<turn_answer> {
      auto& st = self->state;
      if (st.cfg.ended_elsewhere)
        for (const auto& id : st.cfg.ended_elsewhere->take())
          st.running.erase(id);
      auto claim = ports::prepare_turn_step(st.rules, r);
      if (!claim)
        return std::move(claim.error()); // refused before anything was sent
      auto a = st.store->turn(r, *claim, st.rules.finished_jobs_ttl);
      remember(st, r, a);
      if (!a)
        return std::move(a.error());
      return std::move(*a);
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
      if (status != nullptr && *status == "running") {
        // The cancel mark: the runner, wherever it is, then knows a
        // pg_cancel_backend of its statement for this user's cancel.
        if (auto m = st.store->cancel_mark(job_id, true); !m)
          return std::move(m.error());
      }
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
        return std::move(*r); // raced with a claim: status (and node) as now stored
      ports::overlay(*rec, upd.set, upd.del);
      finished_once(st, job_id, user, "cancelled", *rec);
      return pending_cancel{true, "cancelled", {}};
    },
    [=](cancel_mark_atom, const std::string& job_id) -> caf::result<bool> {
      auto m = self->state.store->cancel_mark(job_id, false);
      if (!m)
        return std::move(m.error());
      return *m;
    },
  };
}

status_actor spawn_status(caf::actor_system& sys, const status_settings& cfg,
                          std::shared_ptr<ports::job_store> store, bool detached) {
  return spawn_maybe_detached(sys, detached, status_behavior, std::move(store), cfg);
}

} // namespace batchq
