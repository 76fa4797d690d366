#include "actors/spawn.hpp"
#include "actors/job_runner.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include <caf/sec.hpp>

#include "messages/error.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq {

namespace {

/// Internal timer message: time to send the pending progress write again.
using retry_atom = caf::atom_constant<caf::atom("retry")>;

/// The runner's own handle type: the public interface plus its retry timer.
using job_runner_impl = job_runner_actor::extend<caf::reacts_to<retry_atom>>;

using self_ptr = job_runner_impl::stateful_pointer<job_runner_state>;

constexpr const char* connect_prefix = "cannot connect to the database: ";

job::time_point now() {
  return std::chrono::system_clock::now();
}

const std::string& job_id_of(self_ptr self) {
  return self->state.ticket.job_id;
}

bool go_on(self_ptr self, job_outcome& out);

/// Answers `run` or `claim` with `out` unless the runner goes on by itself; a
/// runner of no turn then quits, a turn's runner waits for its next request
/// (or its next turn).
void end_run(self_ptr self, job_outcome out) {
  auto& st = self->state;
  if (go_on(self, out))
    return;
  st.promise.deliver(std::move(out));
  if (!st.turn)
    self->quit();
}

/// Ends the run: forgets the token, answers `run` with the state reached (or
/// goes on). Idempotent.
void finish(self_ptr self, job_end how) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  st.session.reset(); // back to the pool before anyone hears of the end
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - st.started_at)
                   .count();
  if (st.token)
    st.registry->disarm(job_id_of(self), st.token.get());
  *st.armed = {};
  job_outcome out;
  out.job_id = job_id_of(self);
  out.how = how;
  out.written_status = st.from_status;
  out.status = job::to_string(st.j.status);
  auto f = job::state_fields(st.j);
  out.set = std::move(f.set);
  out.del = std::move(f.del);
  out.statements_run = st.statements_run;
  out.elapsed_ms = elapsed;
  log::debug("job runner finished", {{"job_id", out.job_id},
                                    {"user", st.ticket.user},
                                    {"end", to_string(how)},
                                    {"status", out.status},
                                    {"statements", std::to_string(st.statements_run)},
                                    {"elapsed_ms", std::to_string(elapsed)}});
  end_run(self, std::move(out));
}

/// Why the token fired: the registry's reason for this run, or lease_lost
/// when only the lease deadline passed.
stop_reason why_stopped(self_ptr self) {
  auto& st = self->state;
  auto why = st.registry->reason(job_id_of(self), st.token.get());
  if (why == stop_reason::none && st.token->expired())
    return stop_reason::lease_lost;
  return why;
}

/// Whether an error of a status request is worth retrying: Redis unreachable
/// (the request may or may not have run; the script is safe to repeat) or no
/// answer in time.
bool transient(const caf::error& err) {
  // What says for sure that the step is refused: the lease is gone, or the
  // stored job is not what the step expects. Anything else (Redis
  // unreachable or not ready, no answer in time, an error nobody expected)
  // may or may not have run, and the step is safe to send again.
  return !(is(err, ec::lease_lost) || is(err, ec::invalid_transition)
           || is(err, ec::job_not_found) || is(err, ec::invalid_job));
}

void stop_by_reason(self_ptr self, stop_reason why);

/// The next pause of the retry timer (50 ms, doubling, at most retry_max).
std::chrono::milliseconds next_pause(job_runner_state& st) {
  st.retry_pause = st.retry_pause.count() == 0 ? st.cfg.retry_initial
                                               : std::min(st.retry_pause * 2, st.cfg.retry_max);
  return st.retry_pause;
}


/// Sends the pending progress write; its continuation runs once it landed.
void send_pending(self_ptr self) {
  auto& st = self->state;
  turn_request r;
  r.user = st.ticket.user;
  r.token = st.ticket.lease_token;
  r.part = turn_part::none;
  r.write.push_back(*st.pending);
  auto run = st.run;
  self->request(st.status, st.cfg.status_timeout, turn_atom::value, std::move(r))
    .then(
      [=](const turn_answer&) {
        auto& st = self->state;
        if (st.run != run || !st.pending)
          return; // an answer for an earlier job of the turn
        for (const auto& [k, v] : st.pending->set)
          st.stored[k] = v;
        for (const auto& k : st.pending->del)
          st.stored.erase(k);
        st.from_status = st.pending->to_status;
        st.pending.reset();
        st.retry_pause = std::chrono::milliseconds{0};
        auto next = std::move(st.on_written);
        st.on_written = nullptr;
        next();
      },
      [=](caf::error& err) {
        auto& st = self->state;
        if (st.finished || st.run != run)
          return;
        if (transient(err)) {
          next_pause(st);
          log::warning("progress write failed, retrying",
                       {{"job_id", job_id_of(self)},
                        {"user", st.ticket.user},
                        {"retry_ms", std::to_string(st.retry_pause.count())},
                        {"error", self->system().render(err)}});
          self->delayed_send(self, st.retry_pause, retry_atom::value);
          return;
        }
        auto lvl = is(err, ec::lease_lost) ? log::level::warning : log::level::error;
        log::write(lvl, "job runner stopped: progress write refused",
                   {{"job_id", job_id_of(self)},
                    {"user", st.ticket.user},
                    {"error", self->system().render(err)}});
        finish(self, is(err, ec::lease_lost) ? job_end::lost : job_end::aborted);
      });
}

/// Writes the job's current state (it stays running) and then calls `on_ok`.
void write_progress(self_ptr self, std::function<void()> on_ok) {
  auto& st = self->state;
  auto f = job::state_fields(st.j);
  // Nothing to write when Redis has it already: a simple job's first step
  // was started by its claim (turn.lua), which saves a round trip per job.
  auto stored = [&](const std::string& k) -> const std::string* {
    auto i = st.stored.find(k);
    return i == st.stored.end() ? nullptr : &i->second;
  };
  bool same = std::all_of(f.set.begin(), f.set.end(),
                          [&](const auto& kv) {
                            auto v = stored(kv.first);
                            return v != nullptr && *v == kv.second;
                          })
              && std::none_of(f.del.begin(), f.del.end(),
                              [&](const auto& k) { return stored(k) != nullptr; });
  if (same) {
    on_ok();
    return;
  }
  job_write w;
  w.job_id = st.ticket.job_id;
  w.expected_status = st.from_status;
  w.expected_claim = st.claim;
  w.to_status = job::to_string(st.j.status);
  w.kind = write_kind::progress;
  w.set = std::move(f.set);
  w.del = std::move(f.del);
  st.pending = std::move(w);
  st.on_written = std::move(on_ok);
  send_pending(self);
}

/// The retry timer: send the pending write again, unless the token fired
/// meanwhile (then the stop decides; the final state is written by the
/// user_queue with every field, so the skipped progress write loses nothing).
void run_statement(self_ptr self, const job::statement& stmt);
void do_step(self_ptr self);

void retry(self_ptr self) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.token->stop_requested()) {
    st.pending.reset();
    st.on_written = nullptr;
    st.pending_statement.reset();
    stop_by_reason(self, why_stopped(self));
    return;
  }
  if (st.pending) {
    send_pending(self);
  } else if (st.pending_statement) {
    auto stmt = std::move(*st.pending_statement);
    st.pending_statement.reset();
    run_statement(self, stmt);
  } else {
    do_step(self); // the timeout cap could not be read yet
  }
}

/// The token fired (or another node's pg_cancel_backend stopped the
/// statement, `why` = user_cancel): end the job as the reason says.
void stop_by_reason(self_ptr self, stop_reason why) {
  auto& st = self->state;
  log::info("job runner stopping", {{"job_id", job_id_of(self)}, {"reason", to_string(why)}});
  switch (why) {
    case stop_reason::drain:
      job::drain(st.j, now());
      finish(self, st.j.status == job::status::pending ? job_end::drained : job_end::finished);
      return;
    case stop_reason::user_cancel:
      if (auto r = job::cancel(st.j, now()); !r)
        log::warning("job runner: cancel refused",
                     {{"job_id", job_id_of(self)}, {"error", r.error().message}});
      finish(self, job_end::finished);
      return;
    default:
      // lease_lost (or a deadline that passed): another node may hold the
      // lease now; write nothing more.
      finish(self, job_end::lost);
  }
}

/// The session of this job, connecting on first use; nullptr when the job
/// cannot connect (st.connect_error then says why, and stays set), or when
/// the password could not be read because Redis is unreachable (`retry` is
/// then set: try again later, nothing is sticky).
ports::sql_session* ensure_session(self_ptr self, bool& retry) {
  auto& st = self->state;
  retry = false;
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
    if (!p && is(p.error(), ec::redis_unavailable)) {
      retry = true;
      return nullptr;
    }
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

/// After an outcome was applied: the job is final (answer), or its progress
/// is written and the next statement follows.
void after_outcome(self_ptr self) {
  auto& st = self->state;
  if (job::is_final(st.j.status)) {
    finish(self, job_end::finished);
    return;
  }
  write_progress(self, [=] { self->send(self, step_atom::value); });
}

/// Applies the outcome of `stmt` to the job and goes on.
void record_outcome(self_ptr self, const job::statement& stmt, const job::outcome& o) {
  auto& st = self->state;
  if (auto r = job::apply(st.j, stmt, o, now()); !r) {
    log::error("job runner: outcome refused", {{"job_id", job_id_of(self)},
                                               {"error", r.error().message}});
    finish(self, job_end::aborted);
    return;
  }
  after_outcome(self);
}

/// A 57014 this runner did not cause: a user's cancel when the job carries
/// the cancel mark (another node's pg_cancel_backend fallback, SPEC §5 v2),
/// else `failed` as PostgreSQL said. Redis unreachable: the failure stands.
void check_cancel_mark(self_ptr self, const job::statement& stmt, const job::outcome& failed) {
  auto& st = self->state;
  auto run = st.run;
  self->request(st.status, st.cfg.status_timeout, cancel_mark_atom::value, job_id_of(self))
    .then(
      [=](bool marked) {
        if (self->state.finished || self->state.run != run)
          return;
        if (marked) {
          log::info("statement cancelled by another node for a user's cancel",
                    {{"job_id", job_id_of(self)}});
          stop_by_reason(self, stop_reason::user_cancel);
          return;
        }
        record_outcome(self, stmt, failed);
      },
      [=](caf::error& err) {
        if (self->state.finished || self->state.run != run)
          return;
        log::warning("cancel mark not read; the statement's failure stands",
                     {{"job_id", job_id_of(self)}, {"error", self->system().render(err)}});
        record_outcome(self, stmt, failed);
      });
}

/// A keeper for `stmt` when it is the main query of a step that keeps its rows
/// (SPEC §11): its run begun in Redis now that the step's start is recorded.
/// nullopt when nothing is kept, or when Redis refused or failed the begin
/// (logged; the statement runs anyway).
std::optional<ports::result_keeper> start_keeping(self_ptr self, const job::statement& stmt) {
  auto& st = self->state;
  if (!st.cfg.results || stmt.kind != job::statement_kind::step
      || stmt.step >= st.j.steps.size() || !job::keeps_results(st.j, stmt.step))
    return std::nullopt;
  auto run = st.cfg.results->begin(job_id_of(self), stmt.step);
  if (!run) {
    log::warning("rows of the step not kept", {{"job_id", job_id_of(self)},
                                               {"step", std::to_string(stmt.step)},
                                               {"error", message_of(run.error())}});
    return std::nullopt;
  }
  std::optional<ports::result_keeper> k;
  k.emplace(*st.cfg.results, job_id_of(self), stmt.step, std::move(run->id), run->bytes_before,
            st.cfg.results_limits);
  return k;
}

/// Runs `stmt` (already begun and written) and records its outcome.
void run_statement(self_ptr self, const job::statement& stmt) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.token->stop_requested()) { // fired while the `running` write was in flight
    stop_by_reason(self, why_stopped(self));
    return;
  }
  job::outcome o;
  bool later = false;
  auto* sess = ensure_session(self, later);
  if (later) {
    auto pause = next_pause(st);
    log::warning("password not read (Redis unreachable), retrying",
                 {{"job_id", job_id_of(self)}, {"retry_ms", std::to_string(pause.count())}});
    st.pending_statement = stmt;
    self->delayed_send(self, pause, retry_atom::value);
    return;
  }
  st.retry_pause = std::chrono::milliseconds{0};
  if (sess == nullptr) {
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
    auto keeper = start_keeping(self, stmt);
    auto res = sess->execute(job_id_of(self), stmt.sql, stmt.timeout_ms, st.token.get(),
                             stmt.templated, keeper ? &*keeper : nullptr);
    if (keeper) {
      keeper->finish(res && res->ok());
      if (keeper->failure())
        log::warning("rows of the step not all kept",
                     {{"job_id", job_id_of(self)}, {"step", std::to_string(stmt.step)},
                      {"error", message_of(*keeper->failure())}});
    }
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
          if (res->error.sqlstate == "57014" && !st.token->stop_requested()) {
            // Cancelled, and not by this runner's token (which makes the
            // outcome `cancelled`): a statement timeout, someone's
            // pg_cancel_backend, or another node's fallback for a user's
            // cancel; Redis' cancel mark tells the last apart.
            check_cancel_mark(self, stmt, job::outcome::failure(res->error.message));
            return;
          }
          o = job::outcome::failure(res->error.message);
          break;
        case pg::outcome::cancelled:
          stop_by_reason(self, why_stopped(self));
          return;
      }
    }
  }
  record_outcome(self, stmt, o);
}

/// One statement per message.
void do_step(self_ptr self) {
  auto& st = self->state;
  if (!st.started || st.finished)
    return;
  if (!st.cap_ms) {
    auto cap = st.env->timeout_cap_ms(st.ticket.user);
    if (!cap && is(cap.error(), ec::redis_unavailable)) {
      auto pause = next_pause(st);
      log::warning("timeout cap not read (Redis unreachable), retrying",
                   {{"user", st.ticket.user}, {"retry_ms", std::to_string(pause.count())}});
      self->delayed_send(self, pause, retry_atom::value);
      return;
    }
    if (!cap)
      log::warning("timeout cap unknown, using the default",
                   {{"user", st.ticket.user}, {"error", self->system().render(cap.error())}});
    st.cap_ms = cap ? *cap : st.cfg.default_timeout_ms;
    st.retry_pause = std::chrono::milliseconds{0};
  }
  auto next = job::next_statement(st.j, *st.cap_ms);
  if (!next) {
    if (!job::is_final(st.j.status)) {
      // A record with nothing left to run that still says running (e.g. a
      // worker died between its last two writes): settle it.
      st.j.status = job::steps_outcome(st.j);
      st.j.updated_at = job::iso8601(now());
    }
    finish(self, job_end::finished);
    return;
  }
  if (st.token->stop_requested()) { // the statement never starts
    stop_by_reason(self, why_stopped(self));
    return;
  }
  if (auto r = job::begin(st.j, *next, now()); !r) {
    log::error("job runner: begin refused", {{"job_id", job_id_of(self)},
                                             {"error", r.error().message}});
    finish(self, job_end::aborted);
    return;
  }
  auto stmt = std::move(*next);
  write_progress(self, [=] { run_statement(self, stmt); });
}

/// Starts the run of `ticket` (the first job of a `run`, or the next one the
/// runner claimed itself): a fresh per-job state, the token armed first.
void begin_run(self_ptr self, job_ticket ticket) {
  auto& st = self->state;
  ++st.run;
  st.started = true;
  st.finished = false;
  st.started_at = std::chrono::steady_clock::now();
  st.ticket = std::move(ticket);
  st.j = job::job{};
  st.from_status.clear();
  st.claim.clear();
  st.stored.clear();
  st.pending.reset();
  st.on_written = nullptr;
  st.retry_pause = std::chrono::milliseconds{0};
  st.pending_statement.reset();
  st.cap_ms.reset();
  st.session.reset();
  st.connect_error.reset();
  st.statements_run = 0;
  st.start_observed = false;
  // Arm first: a cancel that came before is a tombstone, and the token is
  // then born fired.
  st.token = st.registry->arm(st.ticket.job_id, st.ticket.user, st.ticket.lease_token);
  *st.armed = {st.ticket.job_id, st.token};
  for (const auto& [k, v] : st.ticket.record) {
    st.stored[k] = v;
    if (k == "status")
      st.from_status = v;
    else if (k == "claim")
      st.claim = v;
  }
  auto decoded = job::decode(st.ticket.job_id, st.ticket.record);
  if (!decoded) {
    // A record the model cannot read: answer it failed with the reason,
    // so that it is not left `running` without an owner.
    log::error("job record unreadable", {{"job_id", st.ticket.job_id},
                                         {"user", st.ticket.user},
                                         {"error", decoded.error().message}});
    job_outcome out;
    out.job_id = st.ticket.job_id;
    out.how = job_end::finished;
    out.written_status = st.from_status;
    out.status = "failed";
    out.set = {{"status", "failed"},
               {"failed_reason", "invalid job record: " + decoded.error().message},
               {"updated_at", job::iso8601(now())}};
    st.finished = true;
    st.registry->disarm(st.ticket.job_id, st.token.get());
    *st.armed = {};
    end_run(self, std::move(out));
    return;
  }
  st.j = std::move(*decoded);
  st.from_status = job::to_string(st.j.status);
  log::debug("job runner started", {{"job_id", st.ticket.job_id}, {"user", st.ticket.user}});
  self->send(self, step_atom::value);
}

/// `record` as stored after the end write of `out`, for the `job finished`
/// line.
field_pairs record_after(const job_runner_state& st, const job_outcome& out) {
  field_pairs rec(st.stored.begin(), st.stored.end());
  ports::overlay(rec, out.set, out.del);
  return rec;
}

/// Going on (header): when the job ended plainly and the turn may claim
/// another, sends the step that writes the end with the next claim; when that
/// claims a job and the turn may still go on, tells the user_queue and starts
/// it (true). False: `out` is to be answered, with the step when one was sent.
bool go_on(self_ptr self, job_outcome& out) {
  auto& st = self->state;
  if (!st.turn || !st.cfg.store || out.how != job_end::finished)
    return false;
  auto& t = *st.turn;
  if (t.flags->fenced.load())
    return false; // the user_queue sends nothing more; it carries the end
  auto count = t.flags->jobs.load() + 1;
  bool more = t.flags->go_on.load() && count < t.budget;
  turn_request r = t.base;
  r.part = more ? turn_part::next : turn_part::release;
  if (!more)
    r.inherit.clear();
  r.write.push_back(ports::end_write(out, t.base.token)); // final: how == finished
  out.step_sent = true;
  out.step = r; // as the user_queue would send it (the rules are applied again there)
  auto a = ports::run_turn_step(*st.cfg.store, st.cfg.rules, r);
  if (!a) {
    out.step_error = std::move(a.error());
    return false;
  }
  ports::log_job_finished(out.job_id, t.base.user, out.status, record_after(st, out),
                          st.cfg.rules.clock());
  if (st.claimed_by_status && st.cfg.ended_elsewhere) // the status actor keeps its record
    st.cfg.ended_elsewhere->add(out.job_id);
  if (!more || a->what != turn_outcome::job || a->jobs.empty() || !t.flags->go_on.load()
      || t.flags->fenced.load()) {
    out.step_answer = std::move(*a);
    return false;
  }
  t.flags->jobs = count;
  log::debug("job runner goes on", {{"job_id", out.job_id},
                                    {"user", t.base.user},
                                    {"next", a->jobs.front().job_id}});
  self->send(t.queue, continued_atom::value,
             job_continued{out.job_id, out.status, out.statements_run});
  st.claimed_by_status = false;
  begin_run(self, std::move(a->jobs.front()));
  return true;
}

/// `claim` (header): the turn's next step on the runner's own store; the job
/// it claims runs here, anything else is answered at once.
void claim(self_ptr self) {
  auto& st = self->state;
  auto& t = *st.turn;
  job_outcome out; // no job: what the user_queue carries on from
  if (t.flags->fenced.load()) {
    st.promise.deliver(std::move(out)); // nothing sent
    return;
  }
  turn_request r = t.base;
  r.part = turn_part::next;
  out.step_sent = true;
  out.step = r; // as the user_queue would send it (the rules are applied again there)
  auto a = ports::run_turn_step(*st.cfg.store, st.cfg.rules, r);
  if (!a) {
    out.step_error = std::move(a.error());
    st.promise.deliver(std::move(out));
    return;
  }
  if (a->what != turn_outcome::job || a->jobs.size() != 1 || !t.flags->go_on.load()
      || t.flags->fenced.load()) {
    out.step_answer = std::move(*a);
    st.promise.deliver(std::move(out));
    return;
  }
  // The lease is held: the scheduler renews it from now on (idempotent).
  self->send(t.scheduler, started_atom::value, t.base.user, t.base.token);
  st.claimed_by_status = false;
  begin_run(self, std::move(a->jobs.front()));
}

/// A job is running (begun, not finished).
bool busy(const job_runner_state& st) {
  return st.started && !st.finished;
}

/// Whether a request may start a job now; else `rp` is answered with why not.
bool may_start(self_ptr self, caf::typed_response_promise<job_outcome>& rp) {
  if (busy(self->state)) {
    rp.deliver(make_error(ec::invalid_job, "this runner already runs a job"));
    return false;
  }
  return true;
}

job_runner_impl::behavior_type
job_runner_behavior(self_ptr self, runner_settings cfg, status_actor status,
                    std::shared_ptr<ports::job_environment> env,
                    std::shared_ptr<ports::sql_connector> sql,
                    std::shared_ptr<pg::cancel_registry> registry) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.env = std::move(env);
  st.sql = std::move(sql);
  st.registry = std::move(registry);
  // A runner killed before it finished (system shutdown) must not leave its
  // token armed: a later cancel would wait for a `final` that never comes.
  self->attach_functor([reg = st.registry, armed = st.armed] {
    if (!armed->job_id.empty())
      reg->disarm(armed->job_id, armed->token.get());
  });
  return {
    [=](turn_atom, runner_turn_ptr& turn) {
      auto& st = self->state;
      if (busy(st)) {
        log::error("job runner given a turn while it runs a job", {{"job_id", job_id_of(self)}});
        return;
      }
      st.turn = std::move(turn);
    },
    [=](claim_atom) -> caf::typed_response_promise<job_outcome> {
      auto rp = self->make_response_promise<job_outcome>();
      auto& st = self->state;
      if (!may_start(self, rp))
        return rp;
      if (!st.turn || !st.cfg.store) {
        rp.deliver(make_error(ec::invalid_job, "this runner serves no turn it may claim for"));
        return rp;
      }
      st.promise = rp;
      claim(self);
      return rp;
    },
    [=](run_atom, job_ticket& ticket) -> caf::typed_response_promise<job_outcome> {
      auto rp = self->make_response_promise<job_outcome>();
      auto& st = self->state;
      if (!may_start(self, rp))
        return rp;
      st.promise = rp;
      st.claimed_by_status = true;
      begin_run(self, std::move(ticket));
      return rp;
    },
    [=](step_atom) { do_step(self); },
    [=](retry_atom) { retry(self); },
  };
}

} // namespace

job_runner_actor spawn_job_runner(caf::actor_system& sys, const runner_settings& cfg,
                                  status_actor status,
                                  std::shared_ptr<ports::job_environment> env,
                                  std::shared_ptr<ports::sql_connector> sql,
                                  std::shared_ptr<pg::cancel_registry> registry,
                                  bool detached) {
  job_runner_impl h = spawn_maybe_detached(sys, detached, job_runner_behavior, cfg,
                                           std::move(status), std::move(env), std::move(sql),
                                           std::move(registry));
  return h;
}

} // namespace batchq
