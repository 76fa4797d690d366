#include "actors/spawn.hpp"
#include "actors/job_runner.hpp"

#include <charconv>
#include <utility>

#include "messages/error.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq {

namespace {

using self_ptr = job_runner_actor::stateful_pointer<job_runner_state>;

constexpr const char* connect_prefix = "cannot connect to the database: ";

job::time_point now() {
  return std::chrono::system_clock::now();
}

const std::string& job_id_of(self_ptr self) {
  return self->state.ticket.job_id;
}

/// Ends the job on this node: tells the canceller (before disarming, so a
/// cancel that finds no token here finds the final status instead), forgets
/// the token, answers `run` and quits. Idempotent.
void finish(self_ptr self, const std::string& status) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  st.session.reset(); // back to the pool before anyone hears of the end
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - st.started_at)
                     .count();
  if (st.canceller)
    self->send(st.canceller, final_atom::value, job_id_of(self), status);
  st.registry->disarm(job_id_of(self));
  st.armed_id->clear();
  log::debug("job runner finished", {{"job_id", job_id_of(self)},
                                    {"user", st.ticket.user},
                                    {"status", status},
                                    {"statements", std::to_string(st.statements_run)},
                                    {"elapsed_ms", std::to_string(elapsed)}});
  st.promise.deliver(job_summary{job_id_of(self), status, st.statements_run, elapsed});
  self->quit();
}

state_write make_write(const job_runner_state& st, std::string to_status) {
  auto f = job::state_fields(st.j);
  return state_write{st.ticket.job_id, st.ticket.user, st.ticket.lease_token, st.from_status,
                     std::move(to_status), std::move(f.set), std::move(f.del)};
}

/// A refused or failed status write: nothing more may be written (lease_lost)
/// or the stored state is not what we think; stop with the last status written.
void stop_on_write_error(self_ptr self, const char* what, const caf::error& err) {
  auto lvl = is(err, ec::lease_lost) ? log::level::warning : log::level::error;
  log::write(lvl, "job runner stopped: status write failed",
             {{"job_id", job_id_of(self)},
              {"user", self->state.ticket.user},
              {"write", what},
              {"error", self->system().render(err)}});
  finish(self, self->state.from_status);
}

/// Writes the job's current state (status = j.status) and then calls `on_ok`.
template <class F>
void write_state(self_ptr self, F on_ok) {
  auto w = make_write(self->state, job::to_string(self->state.j.status));
  auto to = w.to_status;
  self->request(self->state.status, self->state.cfg.status_timeout, write_atom::value, std::move(w))
    .then(
      [=](bool) {
        self->state.from_status = to;
        on_ok();
      },
      [=](caf::error& err) { stop_on_write_error(self, "write", err); });
}

void requeue(self_ptr self) {
  auto w = make_write(self->state, "pending");
  self->request(self->state.status, self->state.cfg.status_timeout, requeue_atom::value,
                std::move(w))
    .then(
      [=](bool) {
        self->state.from_status = "pending";
        finish(self, "pending");
      },
      [=](caf::error& err) { stop_on_write_error(self, "requeue", err); });
}

/// The token fired (or another node's pg_cancel_backend stopped the
/// statement, `why` = user_cancel): end the job as the reason says.
void stop_by_reason(self_ptr self, stop_reason why) {
  auto& st = self->state;
  log::info("job runner stopping", {{"job_id", job_id_of(self)}, {"reason", to_string(why)}});
  switch (why) {
    case stop_reason::lease_lost:
      // Another node may hold the lease now: write nothing more.
      finish(self, st.from_status);
      return;
    case stop_reason::drain:
      job::drain(st.j, now());
      if (st.j.status == job::status::pending)
        requeue(self);
      else
        finish(self, job::to_string(st.j.status));
      return;
    default: {
      // user_cancel (none cannot happen for a fired token; treated alike).
      if (auto r = job::cancel(st.j, now()); !r) {
        log::warning("job runner: cancel refused", {{"job_id", job_id_of(self)},
                                                    {"error", r.error().message}});
        finish(self, st.from_status);
        return;
      }
      write_state(self, [=] { finish(self, job::to_string(self->state.j.status)); });
    }
  }
}

/// The session of this job, connecting on first use; nullptr when the job
/// cannot connect (st.connect_error then says why, and stays set).
ports::sql_session* ensure_session(self_ptr self) {
  auto& st = self->state;
  if (st.session)
    return st.session.get();
  if (st.connect_error)
    return nullptr;
  const auto& db = st.j.db;
  auto fail = [&](std::string reason) -> ports::sql_session* {
    st.connect_error = std::move(reason);
    log::warning("job cannot connect", {{"job_id", job_id_of(self)},
                                        {"user", st.ticket.user},
                                        {"reason", *st.connect_error}});
    return nullptr;
  };
  std::optional<std::string> password = db.pass;
  if (!password) {
    auto p = st.env->password(st.j.user, db.dbuser);
    if (!p)
      return fail(connect_prefix + self->system().render(p.error()));
    password = std::move(*p);
  }
  if (!password)
    return fail(connect_prefix + std::string{"no credentials for role "} + db.dbuser);
  pg::pool_key key;
  key.host = db.host;
  key.dbname = db.dbname;
  key.role = db.dbuser;
  key.port = st.cfg.postgres_port;
  if (!db.port.empty()) {
    unsigned value = 0;
    auto [end, err] = std::from_chars(db.port.data(), db.port.data() + db.port.size(), value);
    if (err != std::errc{} || end != db.port.data() + db.port.size() || value == 0
        || value > 65535)
      return fail(connect_prefix + std::string{"invalid port "} + db.port);
    key.port = static_cast<uint16_t>(value);
  }
  auto s = st.sql->connect(key, *password);
  if (!s) {
    auto msg = message_of(s.error());
    if (msg.empty())
      msg = self->system().render(s.error());
    if (msg.rfind(connect_prefix, 0) != 0)
      msg = connect_prefix + msg;
    return fail(std::move(msg));
  }
  st.session = std::move(*s);
  return st.session.get();
}

/// Runs `stmt` (already begun and written) and records its outcome.
void run_statement(self_ptr self, const job::statement& stmt) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.token->cancelled()) { // fired while the `running` write was in flight
    stop_by_reason(self, st.registry->reason(job_id_of(self)));
    return;
  }
  job::outcome o;
  if (auto* sess = ensure_session(self); sess == nullptr) {
    o = job::outcome::failure(*st.connect_error);
  } else {
    log::debug("statement", {{"job_id", job_id_of(self)},
                             {"kind", job::to_string(stmt.kind)},
                             {"timeout_ms", std::to_string(stmt.timeout_ms)},
                             {"sql", log::sql_excerpt(stmt.sql)}});
    if (!st.start_observed) { // SPEC §8 metrics: creation to first statement
      st.start_observed = true;
      if (auto created = job::parse_iso8601(st.j.created_at))
        metrics::global().enqueue_to_start.observe(
          std::chrono::duration<double>(now() - *created).count());
    }
    auto& m = metrics::global();
    m.running_statements.fetch_add(1, std::memory_order_relaxed);
    auto started = std::chrono::steady_clock::now();
    auto res = sess->execute(job_id_of(self), stmt.sql, stmt.timeout_ms, st.token.get());
    m.running_statements.fetch_sub(1, std::memory_order_relaxed);
    m.statement_duration.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!res) {
      ++st.statements_run;
      auto msg = message_of(res.error());
      if (msg.empty())
        msg = self->system().render(res.error());
      if (is(res.error(), ec::pg_connection_lost))
        st.session.reset(); // broken: the next statement reconnects
      o = job::outcome::failure(std::move(msg));
    } else {
      if (res->sent)
        ++st.statements_run;
      switch (res->what) {
        case pg::outcome::succeeded:
          o = job::outcome::success();
          break;
        case pg::outcome::failed:
          if (res->error.sqlstate == "57014"
              && res->error.message == "canceling statement due to user request"
              && !st.token->cancelled()) {
            // Another node's pg_cancel_backend fallback: a user's cancel.
            stop_by_reason(self, stop_reason::user_cancel);
            return;
          }
          o = job::outcome::failure(res->error.message);
          break;
        case pg::outcome::cancelled:
          stop_by_reason(self, st.registry->reason(job_id_of(self)));
          return;
      }
    }
  }
  if (auto r = job::apply(st.j, stmt, o, now()); !r) {
    log::error("job runner: outcome refused", {{"job_id", job_id_of(self)},
                                               {"error", r.error().message}});
    finish(self, st.from_status);
    return;
  }
  write_state(self, [=] { self->send(self, step_atom::value); });
}

/// One statement per message.
void do_step(self_ptr self) {
  auto& st = self->state;
  if (!st.started || st.finished)
    return;
  auto next = job::next_statement(st.j, st.cap_ms);
  if (!next) {
    if (job::is_final(st.j.status)) {
      finish(self, job::to_string(st.j.status));
      return;
    }
    // A record with nothing left to run that still says running (e.g. a
    // worker died between its last two writes): settle it.
    st.j.status = job::steps_outcome(st.j);
    st.j.updated_at = job::iso8601(now());
    write_state(self, [=] { finish(self, job::to_string(self->state.j.status)); });
    return;
  }
  if (st.token->cancelled()) { // the statement never starts
    stop_by_reason(self, st.registry->reason(job_id_of(self)));
    return;
  }
  if (auto r = job::begin(st.j, *next, now()); !r) {
    log::error("job runner: begin refused", {{"job_id", job_id_of(self)},
                                             {"error", r.error().message}});
    finish(self, st.from_status);
    return;
  }
  auto stmt = std::move(*next);
  write_state(self, [=] { run_statement(self, stmt); });
}

/// A record the model cannot read: fail it with the reason, so that it is not
/// left `running` without an owner.
void fail_undecodable(self_ptr self, const std::string& from, const std::string& reason) {
  auto& st = self->state;
  state_write w{st.ticket.job_id, st.ticket.user, st.ticket.lease_token, from, "failed",
                {{"status", "failed"},
                 {"failed_reason", reason},
                 {"updated_at", job::iso8601(now())}},
                {}};
  self->request(st.status, st.cfg.status_timeout, write_atom::value, std::move(w))
    .then(
      [=](bool) {
        self->state.from_status = "failed";
        finish(self, "failed");
      },
      [=](caf::error& err) { stop_on_write_error(self, "write", err); });
}

} // namespace

job_runner_actor::behavior_type
job_runner_behavior(job_runner_actor::stateful_pointer<job_runner_state> self,
                    runner_settings cfg, status_actor status, canceller_actor canceller,
                    std::shared_ptr<ports::job_environment> env,
                    std::shared_ptr<ports::sql_connector> sql,
                    std::shared_ptr<pg::cancel_registry> registry) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.canceller = std::move(canceller);
  st.env = std::move(env);
  st.sql = std::move(sql);
  st.registry = std::move(registry);
  // A runner killed before it finished (system shutdown) must not leave its
  // token armed: a later cancel would wait for a `final` that never comes.
  self->attach_functor([reg = st.registry, id = st.armed_id] {
    if (!id->empty())
      reg->disarm(*id);
  });
  return {
    [=](run_atom, job_ticket& ticket) -> caf::typed_response_promise<job_summary> {
      auto rp = self->make_response_promise<job_summary>();
      auto& st = self->state;
      if (st.started) {
        rp.deliver(make_error(ec::invalid_job, "this runner already runs a job"));
        return rp;
      }
      st.started = true;
      st.started_at = std::chrono::steady_clock::now();
      st.promise = rp;
      st.ticket = std::move(ticket);
      // Arm first: a cancel that came before is a tombstone, and the token is
      // then born fired.
      st.token = st.registry->arm(st.ticket.job_id, st.ticket.user);
      *st.armed_id = st.ticket.job_id;
      std::string stored_status;
      for (const auto& [k, v] : st.ticket.record)
        if (k == "status")
          stored_status = v;
      st.from_status = stored_status;
      auto decoded = job::decode(st.ticket.job_id, st.ticket.record);
      if (!decoded) {
        log::error("job record unreadable", {{"job_id", st.ticket.job_id},
                                             {"user", st.ticket.user},
                                             {"error", decoded.error().message}});
        fail_undecodable(self, stored_status, "invalid job record: " + decoded.error().message);
        return rp;
      }
      st.j = std::move(*decoded);
      st.from_status = job::to_string(st.j.status);
      if (auto cap = st.env->timeout_cap_ms(st.ticket.user)) {
        st.cap_ms = *cap;
      } else {
        log::warning("timeout cap unknown, using the default",
                     {{"user", st.ticket.user}, {"error", self->system().render(cap.error())}});
        st.cap_ms = st.cfg.default_timeout_ms;
      }
      log::debug("job runner started", {{"job_id", st.ticket.job_id},
                                       {"user", st.ticket.user},
                                       {"node", st.cfg.node_id},
                                       {"cap_ms", std::to_string(st.cap_ms)}});
      self->send(self, step_atom::value);
      return rp;
    },
    [=](step_atom) { do_step(self); },
  };
}

job_runner_actor spawn_job_runner(caf::actor_system& sys, const runner_settings& cfg,
                                  status_actor status, canceller_actor canceller,
                                  std::shared_ptr<ports::job_environment> env,
                                  std::shared_ptr<ports::sql_connector> sql,
                                  std::shared_ptr<pg::cancel_registry> registry,
                                  bool detached) {
  return spawn_maybe_detached(sys, detached, job_runner_behavior, cfg, std::move(status),
                              std::move(canceller), std::move(env), std::move(sql),
                              std::move(registry));
}

} // namespace batchq
