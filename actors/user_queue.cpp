#include "actors/user_queue.hpp"

#include <utility>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/error.hpp"
#include "src/log/log.hpp"

namespace batchq {

namespace {

struct user_queue_state {
  std::string user;
  std::string lease_token;
  scheduler_actor scheduler;
  status_actor status;
  job_runner_factory make_runner;
  /// A turn is in progress (from `run` until done/idle is sent).
  bool busy = false;
  /// The first turn asked the status actor to recover orphaned WIP.
  bool recovered = false;

  static inline const char* name = "user_queue";
};

using self_ptr = user_queue_actor::stateful_pointer<user_queue_state>;

std::string render(const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? caf::to_string(err) : text;
}

/// Ends the turn with `idle`.
void idle(self_ptr self) {
  self->state.busy = false;
  self->send(self->state.scheduler, idle_atom::value, self->state.user);
}

/// Ends the turn with `done`.
void done(self_ptr self, job_summary summary) {
  self->state.busy = false;
  self->send(self->state.scheduler, done_atom::value, self->state.user, std::move(summary));
}

void run_job(self_ptr self, job_ticket ticket) {
  auto runner = self->state.make_runner(self->system());
  auto job_id = ticket.job_id;
  log::debug("job dequeued", {{"user", self->state.user}, {"job_id", job_id}});
  self->request(runner, caf::infinite, run_atom::value, std::move(ticket))
    .then([=](job_summary& summary) { done(self, std::move(summary)); },
          [=](caf::error& err) {
            log::error("job runner failed",
                       {{"user", self->state.user}, {"job_id", job_id}, {"error", render(err)}});
            job_summary summary;
            summary.job_id = job_id;
            done(self, std::move(summary));
          });
}

void dequeue(self_ptr self) {
  auto& st = self->state;
  self->request(st.status, caf::infinite, dequeue_atom::value, st.user, st.lease_token)
    .then(
      [=](job_ticket& ticket) {
        if (ticket.job_id.empty())
          idle(self);
        else
          run_job(self, std::move(ticket));
      },
      [=](caf::error& err) {
        log::warning("dequeue failed", {{"user", self->state.user}, {"error", render(err)}});
        idle(self);
      });
}

/// First turn only: the node just took the lease, so whatever is left in the
/// user's work in progress is orphaned (SPEC §7 "Crash"); recover it, then
/// dequeue. A recover error other than lease_lost is logged and the dequeue
/// still happens; lease_lost ends the turn with `idle` like a dequeue error.
void recover_then_dequeue(self_ptr self) {
  auto& st = self->state;
  st.recovered = true;
  self->request(st.status, caf::infinite, recover_atom::value, st.user, st.lease_token)
    .then(
      [=](int32_t n) {
        if (n > 0)
          log::info("orphaned jobs recovered",
                    {{"user", self->state.user}, {"jobs", std::to_string(n)}});
        dequeue(self);
      },
      [=](caf::error& err) {
        log::warning("recover failed", {{"user", self->state.user}, {"error", render(err)}});
        if (is(err, ec::lease_lost))
          idle(self);
        else
          dequeue(self);
      });
}

user_queue_actor::behavior_type user_queue(self_ptr self) {
  return {
    [=](run_atom) {
      auto& st = self->state;
      if (st.busy) {
        log::error("turn granted while a job runs (ignored)", {{"user", st.user}});
        return;
      }
      st.busy = true;
      if (!st.recovered)
        recover_then_dequeue(self);
      else
        dequeue(self);
    },
  };
}

} // namespace

user_queue_actor spawn_user_queue(caf::actor_system& sys, const std::string& user,
                                  const std::string& lease_token, scheduler_actor scheduler,
                                  status_actor status, job_runner_factory make_runner) {
  return sys.spawn([=](self_ptr self) {
    self->state.user = user;
    self->state.lease_token = lease_token;
    self->state.scheduler = scheduler;
    self->state.status = status;
    self->state.make_runner = make_runner;
    return user_queue(self);
  });
}

user_queue_factory make_user_queue_factory(status_actor status, job_runner_factory make_runner) {
  return [=](caf::actor_system& sys, const std::string& user, const std::string& lease_token,
             scheduler_actor scheduler) {
    return spawn_user_queue(sys, user, lease_token, scheduler, status, make_runner);
  };
}

} // namespace batchq
