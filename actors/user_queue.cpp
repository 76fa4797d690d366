#include "actors/user_queue.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/job_runner.hpp"
#include "actors/spawn.hpp"
#include "messages/error.hpp"
#include "src/config/settings.hpp"
#include "src/job/clock.hpp"
#include "src/job/record.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/ports/turn_step.hpp"

namespace batchq {

user_queue_settings user_queue_settings::from(const settings& s) {
  user_queue_settings x;
  x.node_id = s.cluster_node_id;
  x.on_node_loss = s.batch_on_node_loss == on_node_loss::requeue ? job::node_loss_mode::requeue
                                                                 : job::node_loss_mode::fail;
  x.defer_window = std::chrono::milliseconds{2 * s.batch_lease_ttl};
  return x;
}

namespace {

/// Internal timer message: time to send the current step again.
using retry_atom = caf::atom_constant<caf::atom("retry")>;

/// The user_queue's own handle type: the public interface plus its retry timer.
using user_queue_impl = user_queue_actor::extend<caf::reacts_to<retry_atom>>;

struct user_queue_state {
  user_queue_settings cfg;
  turn_grant g;
  scheduler_actor scheduler;
  user_queue_deps deps;

  /// The scheduler heard `started` (the lease is held).
  bool started_sent = false;
  /// The current job is the last one (yield / drain stop).
  bool last_job = false;
  /// The drain's grace is over.
  bool stopping = false;
  /// The lease deadline passed: nothing more is sent.
  bool fenced = false;
  bool ended = false;
  /// Work in flight: a status request, the runner, the backend helper.
  int in_flight = 0;
  /// The step being sent (kept for its retry), its continuations.
  std::optional<turn_request> current;
  std::function<void(turn_answer&)> on_answer;
  std::function<void(const caf::error&)> on_refused;
  std::chrono::milliseconds pause{0};
  /// The end of a job being written now: carried to the next turn if the turn
  /// is fenced before the write lands.
  std::optional<unsettled_job> unwritten;
  /// Orphans still to settle, oldest first.
  std::deque<job_ticket> orphans;
  turn_report report;
  /// The turn's runner (one for the whole turn when deps.runners_go_on, else
  /// one per job) and what it shares with it.
  job_runner_actor runner;
  std::shared_ptr<turn_flags> flags = std::make_shared<turn_flags>();

  static inline const char* name = "user_queue";
};

using self_ptr = user_queue_impl::stateful_pointer<user_queue_state>;

std::string render(const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? caf::to_string(err) : text;
}

bool transient(const caf::error& err) {
  // What says for sure that the step is refused: the lease is gone, or the
  // stored job is not what the step expects. Anything else (Redis
  // unreachable or not ready, no answer in time, an error nobody expected)
  // may or may not have run, and the step is safe to send again.
  return !(is(err, ec::lease_lost) || is(err, ec::invalid_transition)
           || is(err, ec::job_not_found) || is(err, ec::invalid_job));
}

const std::string* field(const field_pairs& xs, const std::string& name) {
  for (const auto& [k, v] : xs)
    if (k == name)
      return &v;
  return nullptr;
}

std::string field_or(const field_pairs& xs, const std::string& name, std::string fallback = {}) {
  auto p = field(xs, name);
  return p ? *p : fallback;
}

log::fields who(self_ptr self) {
  return {{"user", self->state.g.user}};
}

/// Reports the turn and quits. Idempotent.
void end(self_ptr self, turn_end why) {
  auto& st = self->state;
  if (st.ended)
    return;
  st.ended = true;
  st.report.why = why;
  // Jobs of the grant not settled yet stay this node's to settle; so does an
  // end that could not be written.
  st.report.carry = std::move(st.g.carry);
  st.g.carry.clear();
  if (st.unwritten) {
    st.report.carry.push_back(std::move(*st.unwritten));
    st.unwritten.reset();
  }
  if (st.runner && st.deps.runners_go_on) {
    // Idle now (a turn ends with nothing in flight): the next turn may use it.
    if (st.deps.give_back)
      st.deps.give_back(std::move(st.runner));
    else
      self->send_exit(st.runner, caf::exit_reason::user_shutdown);
    st.runner = nullptr;
  }
  log::debug("turn ended", {{"user", st.g.user},
                            {"why", to_string(why)},
                            {"jobs", std::to_string(st.report.jobs)},
                            {"carry", std::to_string(st.report.carry.size())}});
  self->send(st.scheduler, ended_atom::value, st.report);
  self->quit();
}

/// Once fenced: ends the turn as soon as nothing is in flight.
bool ended_if_fenced(self_ptr self) {
  auto& st = self->state;
  if (!st.fenced)
    return false;
  if (st.in_flight == 0)
    end(self, turn_end::fenced);
  return true;
}

void tell_started(self_ptr self) {
  auto& st = self->state;
  if (st.started_sent)
    return;
  st.started_sent = true;
  self->send(st.scheduler, started_atom::value, st.g.user, st.g.token);
}

turn_request make_request(self_ptr self, turn_part part) {
  const auto& g = self->state.g;
  turn_request r;
  r.user = g.user;
  r.token = g.token;
  r.host = g.host;
  r.slot = g.slot;
  r.capacity = g.capacity;
  r.lease_ttl_ms = g.lease_ttl_ms;
  r.part = part;
  if (part == turn_part::next)
    r.inherit = g.inherit;
  return r;
}

void send_current(self_ptr self);

/// Sends one turn step; `ok` runs with its answer, `refused` with an error
/// that is neither transient (retried here) nor lease_lost (ends the turn).
void step(self_ptr self, turn_request r, std::function<void(turn_answer&)> ok,
          std::function<void(const caf::error&)> refused) {
  auto& st = self->state;
  if (ended_if_fenced(self))
    return;
  st.current = std::move(r);
  st.on_answer = std::move(ok);
  st.on_refused = std::move(refused);
  send_current(self);
}

void step_answered(self_ptr self, turn_answer& a);
void step_failed(self_ptr self, caf::error& err);

void send_current(self_ptr self) {
  auto& st = self->state;
  ++st.in_flight;
  self->request(st.deps.status, st.cfg.status_timeout, turn_atom::value, *st.current)
    .then([=](turn_answer& a) { step_answered(self, a); },
          [=](caf::error& err) { step_failed(self, err); });
}

/// The answer of the current step (in flight: counted in in_flight).
void step_answered(self_ptr self, turn_answer& a) {
  auto& st = self->state;
  --st.in_flight;
  st.pause = std::chrono::milliseconds{0};
  st.current.reset();
  auto ok = std::move(st.on_answer);
  st.on_answer = nullptr;
  st.on_refused = nullptr;
  ok(a);
}

/// The error of the current step (in flight: counted in in_flight).
void step_failed(self_ptr self, caf::error& err) {
  auto& st = self->state;
  --st.in_flight;
  if (ended_if_fenced(self))
    return;
  if (transient(err)) {
    st.pause = st.pause.count() == 0 ? st.cfg.retry_initial
                                     : std::min(st.pause * 2, st.cfg.retry_max);
    auto fs = who(self);
    fs.emplace_back("retry_ms", std::to_string(st.pause.count()));
    fs.emplace_back("error", render(err));
    log::warning("turn step failed, retrying", fs);
    ++st.in_flight; // the timer counts as work in flight
    self->delayed_send(self, st.pause, retry_atom::value);
    return;
  }
  if (is(err, ec::lease_lost)) {
    auto fs = who(self);
    fs.emplace_back("error", render(err));
    log::warning("turn lost its lease", fs);
    st.current.reset();
    end(self, turn_end::fenced);
    return;
  }
  st.current.reset();
  auto refused = std::move(st.on_refused);
  st.on_answer = nullptr;
  st.on_refused = nullptr;
  refused(err);
}

/// A refused write (the stored job changed under us): log, give the turn back.
void release_after_refusal(self_ptr self, const caf::error& err);

void release(self_ptr self);
void next(self_ptr self);
void run_job(self_ptr self, job_ticket ticket);
void settle_next_orphan(self_ptr self);

/// What every answer that may hold a job or orphans leads to.
void on_turn_answer(self_ptr self, turn_answer& a) {
  auto& st = self->state;
  switch (a.what) {
    case turn_outcome::job:
      tell_started(self);
      st.g.carry.clear(); // no orphan left: nothing carried is in progress any more
      if (st.fenced) {
        // Claimed after the deadline passed (the answer came late): the job
        // never started; the next turn here puts it back untouched.
        const auto& t = a.jobs.front();
        st.unwritten =
          unsettled_job{t.job_id, st.g.token, "running", "running", {}, {}};
        ended_if_fenced(self);
        return;
      }
      if (st.g.budget <= 0 || st.stopping) {
        // A settle-only turn (drain): the claimed job goes straight back.
        auto& t = a.jobs.front();
        job_write w;
        w.job_id = t.job_id;
        w.expected_status = "running";
        w.expected_claim = st.g.token;
        w.to_status = "pending";
        w.kind = write_kind::requeue;
        w.set = {{"status", "pending"}};
        auto r = make_request(self, turn_part::release);
        r.write.push_back(std::move(w));
        step(self, std::move(r), [=](turn_answer& b) { on_turn_answer(self, b); },
             [=](const caf::error& err) { release_after_refusal(self, err); });
        return;
      }
      run_job(self, std::move(a.jobs.front()));
      return;
    case turn_outcome::recover:
      tell_started(self);
      for (auto& t : a.jobs)
        st.orphans.push_back(std::move(t));
      settle_next_orphan(self);
      return;
    case turn_outcome::empty:
      st.g.carry.clear(); // nothing is in progress any more: nothing to settle
      end(self, turn_end::idle);
      return;
    case turn_outcome::busy:
      // The carry stays: the holder may be a node that only looks (and leaves
      // this node's job to it); if it settles the job, the carry's
      // compare-and-set fails later and the carry is dropped then.
      end(self, turn_end::busy);
      return;
    case turn_outcome::full:
      end(self, turn_end::full); // the carry is still to settle
      return;
    case turn_outcome::released:
      st.report.queue_length = a.queue_length;
      end(self, a.queue_length > 0 ? turn_end::released : turn_end::idle);
      return;
    case turn_outcome::none:
      break;
  }
  log::error("unexpected turn answer", who(self));
  release(self);
}

void claim_through_runner(self_ptr self);

void next(self_ptr self) {
  auto& st = self->state;
  if (st.deps.runners_go_on && st.g.budget > 0 && !st.stopping) {
    claim_through_runner(self);
    return;
  }
  step(self, make_request(self, turn_part::next), [=](turn_answer& a) { on_turn_answer(self, a); },
       [=](const caf::error& err) { release_after_refusal(self, err); });
}

void release(self_ptr self) {
  step(self, make_request(self, turn_part::release),
       [=](turn_answer& a) { on_turn_answer(self, a); },
       [=](const caf::error& err) {
         auto fs = who(self);
         fs.emplace_back("error", render(err));
         log::error("turn release refused", fs);
         end(self, turn_end::idle);
       });
}

void release_after_refusal(self_ptr self, const caf::error& err) {
  auto fs = who(self);
  fs.emplace_back("error", render(err));
  log::error("turn step refused: the stored job changed", fs);
  self->state.unwritten.reset();
  release(self);
}

/// The end of a job is written (final or requeued): tell the canceller.
void job_written(self_ptr self, const std::string& job_id, const std::string& status) {
  auto& st = self->state;
  st.unwritten.reset();
  if (st.deps.canceller)
    self->send(st.deps.canceller, final_atom::value, job_id, status);
}

/// Counts the end of a job the runner answered and keeps it as unwritten
/// until its write lands; whether the turn goes on after it.
bool count_end(self_ptr self, const job_outcome& o) {
  auto& st = self->state;
  bool requeue = o.how == job_end::drained;
  ++st.report.jobs;
  if (requeue)
    ++st.report.requeued;
  else
    ++st.report.finished;
  st.unwritten = unsettled_job{o.job_id, st.g.token, o.written_status, o.status, o.set, o.del};
  return !requeue && !st.last_job && !st.stopping && st.report.jobs < st.g.budget;
}

/// What the step writing the end `o` goes on with once it answered.
std::function<void(turn_answer&)> end_written(self_ptr self, const job_outcome& o) {
  auto job_id = o.job_id;
  auto status = o.status;
  return [=](turn_answer& a) {
    job_written(self, job_id, status);
    on_turn_answer(self, a);
  };
}

/// Writes the end of a job the runner answered, in the step that goes on.
void write_end(self_ptr self, const job_outcome& o) {
  auto& st = self->state;
  bool go_on = count_end(self, o);
  auto r = make_request(self, go_on ? turn_part::next : turn_part::release);
  r.write.push_back(ports::end_write(o, st.g.token));
  step(self, std::move(r), end_written(self, o),
       [=](const caf::error& err) { release_after_refusal(self, err); });
}

/// The runner sent the step `o.step` itself ("Going on"): carry on from its
/// answer (with `ok`) or its error as if this actor had sent it.
void carry_on_from(self_ptr self, job_outcome& o, std::function<void(turn_answer&)> ok) {
  auto& st = self->state;
  st.current = std::move(o.step);
  st.on_answer = std::move(ok);
  st.on_refused = [=](const caf::error& err) { release_after_refusal(self, err); };
  ++st.in_flight; // answered below, as if it had been in flight
  if (o.step_error)
    step_failed(self, o.step_error);
  else
    step_answered(self, o.step_answer);
}

/// The runner sent the step writing the end `o` itself.
void end_sent_by_runner(self_ptr self, job_outcome& o) {
  count_end(self, o);
  carry_on_from(self, o, end_written(self, o));
}

/// The turn's runner: the one it holds, else a new one (bound to the turn
/// when runners go on).
job_runner_actor& runner(self_ptr self) {
  auto& st = self->state;
  if (!st.runner) {
    st.runner = st.deps.make_runner(self->system());
    if (st.deps.runners_go_on) {
      auto t = std::make_shared<runner_turn>();
      t->base = make_request(self, turn_part::none);
      t->base.inherit = st.g.inherit;
      t->budget = st.g.budget;
      t->flags = st.flags;
      t->queue = caf::actor_cast<user_queue_actor>(self);
      t->scheduler = st.scheduler;
      self->send(st.runner, turn_atom::value, runner_turn_ptr{std::move(t)});
    }
  }
  return st.runner;
}

/// The runner ran a job (`run`, or a job it claimed itself) and answered `o`.
void runner_answered(self_ptr self, job_outcome& o) {
  auto& st = self->state;
  if (!st.deps.runners_go_on)
    st.runner = nullptr; // it quit after its one job
  st.report.statements_run += o.statements_run;
  if (o.step_sent) {
    end_sent_by_runner(self, o);
    return;
  }
  if (o.how == job_end::lost || o.how == job_end::aborted || st.fenced) {
    if (o.how != job_end::aborted)
      st.unwritten =
        unsettled_job{o.job_id, st.g.token, o.written_status, o.status, o.set, o.del};
    if (st.deps.canceller)
      self->send(st.deps.canceller, final_atom::value, o.job_id, o.written_status);
    if (o.how == job_end::aborted && !st.fenced) {
      log::error("job taken away while it ran", {{"user", st.g.user}, {"job_id", o.job_id}});
      release(self);
      return;
    }
    st.fenced = true;
    ended_if_fenced(self);
    return;
  }
  write_end(self, o);
}

/// The runner failed (an exception, or it was killed): the job's state is
/// unknown, and the next turn recovers it as an orphan.
void runner_failed(self_ptr self, const caf::error& err, const std::string& job_id) {
  auto& st = self->state;
  st.runner = nullptr;
  log::error("job runner failed",
             {{"user", st.g.user}, {"job_id", job_id}, {"error", render(err)}});
  st.fenced = true;
  ended_if_fenced(self);
}

void run_job(self_ptr self, job_ticket ticket) {
  auto& st = self->state;
  auto& r = runner(self);
  st.flags->jobs = st.report.jobs;
  auto job_id = ticket.job_id;
  log::debug("job claimed", {{"user", st.g.user}, {"job_id", job_id}});
  ++st.in_flight;
  self->request(r, caf::infinite, run_atom::value, std::move(ticket))
    .then(
      [=](job_outcome& o) {
        --self->state.in_flight;
        runner_answered(self, o);
      },
      [=](caf::error& err) {
        --self->state.in_flight;
        runner_failed(self, err, job_id);
      });
}

/// The `next` step through the turn's runner (job_runner.hpp "Going on"): it
/// runs the job it claims at once and answers at its end, or answers the
/// step at once when it claimed nothing to run, and this actor carries on
/// from that answer as if it had sent the step itself.
void claim_through_runner(self_ptr self) {
  auto& st = self->state;
  if (ended_if_fenced(self))
    return;
  auto& r = runner(self);
  st.flags->jobs = st.report.jobs;
  ++st.in_flight;
  self->request(r, caf::infinite, claim_atom::value)
    .then(
      [=](job_outcome& o) {
        auto& st = self->state;
        --st.in_flight;
        if (!o.job_id.empty()) {
          // It claimed a job and ran it: the lease was held (the runner told
          // the scheduler), and no orphan was left in work in progress.
          st.started_sent = true;
          st.g.carry.clear();
          runner_answered(self, o);
          return;
        }
        if (!o.step_sent) { // the turn was fenced before the runner sent anything
          st.fenced = true;
          ended_if_fenced(self);
          return;
        }
        carry_on_from(self, o, [=](turn_answer& a) { on_turn_answer(self, a); });
      },
      [=](caf::error& err) {
        --self->state.in_flight;
        runner_failed(self, err, "");
      });
}

/// Whether `orphan` should be left to its own node for now: another node,
/// still registered, that wrote the job or was first seen holding it by this
/// node within defer_window. Records the sighting in the report.
bool defer(self_ptr self, const job_ticket& orphan) {
  auto& st = self->state;
  auto node = field_or(orphan.record, "node");
  if (!orphan.owner_alive || node.empty() || node == st.cfg.node_id)
    return false;
  auto claim = field_or(orphan.record, "claim");
  auto now = std::chrono::system_clock::now();
  // The first sighting is kept: the window does not move with later ones.
  auto first = now;
  for (const auto& s : st.g.deferred)
    if (s.job_id == orphan.job_id && s.claim == claim)
      first = std::chrono::system_clock::time_point{std::chrono::milliseconds{s.since_ms}};
  auto since = first;
  if (auto updated = job::parse_iso8601(field_or(orphan.record, "updated_at")))
    since = std::max(since, *updated);
  if (now - since >= st.cfg.defer_window)
    return false;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(first.time_since_epoch());
  st.report.deferred.push_back(orphan_sighting{orphan.job_id, claim, ms.count()});
  return true;
}

/// The unsettled job of the grant that `orphan` is (same id and claim), if any.
std::optional<unsettled_job> take_carry(self_ptr self, const job_ticket& orphan) {
  auto& carry = self->state.g.carry;
  auto claim = field_or(orphan.record, "claim");
  for (auto i = carry.begin(); i != carry.end(); ++i) {
    if (i->job_id == orphan.job_id && i->claim == claim) {
      auto out = std::move(*i);
      carry.erase(i);
      return out;
    }
  }
  return std::nullopt;
}

/// Writes `j` (the orphan's state after settling) with a compare-and-set on
/// the orphan's stored status and claim; then the next orphan.
void write_settled(self_ptr self, const job_ticket& orphan, const job::job& j,
                   const std::string& outcome) {
  auto& st = self->state;
  auto f = job::state_fields(j);
  job_write w;
  w.job_id = orphan.job_id;
  w.expected_status = field_or(orphan.record, "status");
  w.expected_claim = field_or(orphan.record, "claim");
  w.to_status = job::to_string(j.status);
  w.kind = j.status == job::status::pending ? write_kind::requeue : write_kind::final;
  w.set = std::move(f.set);
  w.del = std::move(f.del);
  auto r = make_request(self, turn_part::none);
  r.write.push_back(std::move(w));
  auto job_id = orphan.job_id;
  auto status = job::to_string(j.status);
  log::warning("job recovered", {{"job_id", job_id},
                                 {"user", st.g.user},
                                 {"lost_node", field_or(orphan.record, "node", "unknown")},
                                 {"outcome", outcome}});
  step(self, std::move(r),
       [=](turn_answer&) {
         job_written(self, job_id, status);
         settle_next_orphan(self);
       },
       [=](const caf::error& err) {
         auto fs = who(self);
         fs.emplace_back("job_id", job_id);
         fs.emplace_back("error", render(err));
         log::warning("orphan changed while it was settled; left as it is", fs);
         settle_next_orphan(self);
       });
}

/// An orphan of this node's own fenced turn: the runner's state is the truth.
void settle_own(self_ptr self, const job_ticket& orphan, const unsettled_job& u) {
  auto rec = orphan.record;
  for (const auto& d : u.del)
    rec.erase(std::remove_if(rec.begin(), rec.end(), [&](auto& kv) { return kv.first == d; }),
              rec.end());
  for (const auto& [k, v] : u.set) {
    auto it = std::find_if(rec.begin(), rec.end(), [&](auto& kv) { return kv.first == k; });
    if (it != rec.end())
      it->second = v;
    else
      rec.emplace_back(k, v);
  }
  auto j = job::decode(orphan.job_id, rec);
  if (!j) {
    log::error("unsettled job unreadable", {{"job_id", orphan.job_id}, {"error", j.error().message}});
    settle_next_orphan(self);
    return;
  }
  // A statement stopped by the fence did not complete: it runs again.
  job::drain(*j, std::chrono::system_clock::now());
  self->state.unwritten = u; // still this node's to settle if this write does not land
  write_settled(self, orphan, *j,
                j->status == job::status::pending ? "resumed by its node" : "written by its node");
}

/// An orphan of another (or a dead earlier) node: stop its backends, then
/// apply batch.on-node-loss.
void settle_lost(self_ptr self, const job_ticket& orphan) {
  auto& st = self->state;
  auto node_lost = [=] {
    auto& st = self->state;
    auto j = job::decode(orphan.job_id, orphan.record);
    if (!j) {
      log::error("orphan unreadable", {{"job_id", orphan.job_id}, {"error", j.error().message}});
      settle_next_orphan(self);
      return;
    }
    auto node = field_or(orphan.record, "node", "unknown");
    if (node.empty())
      node = "unknown";
    if (auto r = job::node_lost(*j, node, st.cfg.on_node_loss, std::chrono::system_clock::now());
        !r) {
      log::error("orphan refused node loss",
                 {{"job_id", orphan.job_id}, {"error", r.error().message}});
      settle_next_orphan(self);
      return;
    }
    write_settled(self, orphan, *j,
                  j->status == job::status::pending ? "requeued" : job::to_string(j->status));
  };
  // A user asked to cancel the job while its node was going (the cancel
  // mark): the cancel wins over batch.on-node-loss, so the user's DELETE,
  // answered from the pg_cancel_backend fallback, ends `cancelled`.
  auto cancelled_or_lost = [=] {
    ++self->state.in_flight;
    self->request(self->state.deps.status, self->state.cfg.status_timeout,
                  cancel_mark_atom::value, orphan.job_id)
      .then(
        [=](bool marked) {
          --self->state.in_flight;
          if (ended_if_fenced(self))
            return;
          if (!marked) {
            node_lost();
            return;
          }
          auto j = job::decode(orphan.job_id, orphan.record);
          if (!j || !job::cancel(*j, std::chrono::system_clock::now())) {
            node_lost();
            return;
          }
          write_settled(self, orphan, *j, "cancelled by its user");
        },
        [=](caf::error&) {
          --self->state.in_flight;
          if (ended_if_fenced(self))
            return;
          node_lost(); // the mark could not be read: on-node-loss applies
        });
  };
  if (!st.deps.backends) {
    cancelled_or_lost();
    return;
  }
  auto backends = st.deps.backends;
  auto job_id = orphan.job_id;
  auto user = st.g.user;
  auto bound = st.cfg.backend_stop_bound;
  auto helper = spawn_blocking<int>(self->system(), st.cfg.detached_helpers, [=] {
    return backends->stop_backends_of_job(job_id, user, bound);
  });
  ++st.in_flight;
  self->request(helper, bound + st.cfg.status_timeout, run_atom::value)
    .then(
      [=](int n) {
        --self->state.in_flight;
        if (ended_if_fenced(self))
          return;
        if (n > 0)
          log::info("orphaned backends stopped",
                    {{"job_id", job_id}, {"user", user}, {"backends", std::to_string(n)}});
        cancelled_or_lost();
      },
      [=](caf::error& err) {
        auto& st = self->state;
        --st.in_flight;
        if (ended_if_fenced(self))
          return;
        st.pause = st.pause.count() == 0 ? st.cfg.retry_initial
                                         : std::min(st.pause * 2, st.cfg.retry_max);
        log::warning("orphaned backends not known to be stopped, retrying",
                     {{"job_id", job_id},
                      {"user", user},
                      {"retry_ms", std::to_string(st.pause.count())},
                      {"error", self->system().render(err)}});
        // Retried through the front of the orphan list.
        st.orphans.push_front(orphan);
        ++st.in_flight;
        self->delayed_send(self, st.pause, retry_atom::value);
      });
}

void settle_next_orphan(self_ptr self) {
  auto& st = self->state;
  if (ended_if_fenced(self))
    return;
  if (st.orphans.empty()) {
    // Every orphan is settled: what the grant carried and matched no orphan
    // is no longer in progress (settled elsewhere, or final).
    st.g.carry.clear();
    if (st.stopping || st.g.budget <= 0) {
      release(self);
    } else {
      next(self);
    }
    return;
  }
  auto orphan = std::move(st.orphans.front());
  st.orphans.pop_front();
  if (auto u = take_carry(self, orphan)) {
    settle_own(self, orphan, *u);
    return;
  }
  if (defer(self, orphan)) {
    auto fs = who(self);
    fs.emplace_back("job_id", orphan.job_id);
    fs.emplace_back("owner", field_or(orphan.record, "node"));
    log::info("orphan left to its node, which is still registered", fs);
    st.orphans.clear();
    step(self, make_request(self, turn_part::release),
         [=](turn_answer&) { end(self, turn_end::busy); },
         [=](const caf::error&) { end(self, turn_end::busy); });
    return;
  }
  settle_lost(self, orphan);
}

/// The retry timer: the current step again, or the orphan at the front.
void retry(self_ptr self) {
  auto& st = self->state;
  --st.in_flight;
  if (ended_if_fenced(self))
    return;
  if (st.current) {
    if (st.stopping && st.current->part == turn_part::next)
      st.current->part = turn_part::release;
    send_current(self);
    return;
  }
  settle_next_orphan(self);
}

user_queue_impl::behavior_type user_queue(self_ptr self) {
  return {
    [=](run_atom) {
      auto& st = self->state;
      if (st.started_sent || st.current || st.in_flight > 0)
        return;
      log::debug("turn started", {{"user", st.g.user},
                                  {"budget", std::to_string(st.g.budget)},
                                  {"carry", std::to_string(st.g.carry.size())}});
      next(self);
    },
    [=](yield_atom, const std::string& token) {
      if (token == self->state.g.token)
        self->state.last_job = true;
    },
    [=](stop_atom, const std::string& token) {
      auto& st = self->state;
      if (token != st.g.token)
        return;
      st.last_job = true;
      st.stopping = true;
    },
    [=](fence_atom, const std::string& token) {
      auto& st = self->state;
      if (token != st.g.token || st.fenced)
        return;
      st.fenced = true;
      auto fs = who(self);
      fs.emplace_back("in_flight", std::to_string(st.in_flight));
      log::warning("turn fenced: lease deadline passed", fs);
      ended_if_fenced(self);
    },
    [=](continued_atom, job_continued& c) {
      // The runner wrote the end of c.job_id with the next claim and runs
      // the claimed job (job_runner.hpp, "Going on").
      auto& st = self->state;
      ++st.report.jobs;
      ++st.report.finished;
      st.report.statements_run += c.statements_run;
      job_written(self, c.job_id, c.status);
    },
    [=](retry_atom) { retry(self); },
  };
}

} // namespace

user_queue_actor spawn_user_queue(caf::actor_system& sys, const user_queue_settings& cfg,
                                  turn_grant grant, scheduler_actor scheduler,
                                  user_queue_deps deps, std::shared_ptr<turn_flags> flags) {
  user_queue_impl h = sys.spawn([=](self_ptr self) mutable {
    auto& st = self->state;
    if (flags)
      st.flags = std::move(flags);
    st.cfg = cfg;
    st.g = std::move(grant);
    st.scheduler = std::move(scheduler);
    st.deps = std::move(deps);
    st.report.user = st.g.user;
    st.report.token = st.g.token;
    return user_queue(self);
  });
  return h;
}

} // namespace batchq
