#include "actors/canceller.hpp"
#include "actors/spawn.hpp"

#include <optional>
#include <utility>

#include <caf/event_based_actor.hpp>

#include "actors/cluster_gate.hpp"
#include "messages/error.hpp"
#include "src/auth/node_proof.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq {

namespace {

using self_ptr = canceller_actor::stateful_pointer<canceller_state>;
using cancel_promise = caf::typed_response_promise<cancel_result>;

/// How much a cancel may still do when it asks the status actor.
enum class pass {
  /// A user's request: a final status (even `cancelled`) is refused.
  initial,
  /// After a drain requeued the job: a `cancelled` final is the answer.
  again,
  /// Only report the current status (cancelled/final/running); no more waiting.
  report,
};

template <class T>
caf::actor spawn_blocking(self_ptr self, std::function<caf::expected<T>()> f) {
  return batchq::spawn_blocking<T>(self->system(), self->state.detached_helpers, std::move(f));
}

// The unused argument: CAF 0.17.6 dereferences a null shared_ptr<tuple<>>
// when spawning a function actor without arguments (UBSan reports it).
caf::behavior sleeper_behavior(caf::event_based_actor* s, const std::string& /*owner*/) {
  return {
    [=](tick_atom) -> caf::response_promise {
      // Dropped unanswered: the requester's timeout is the timer.
      return s->make_response_promise();
    },
  };
}

std::optional<std::string> recent_final(self_ptr self, const std::string& id) {
  auto i = self->state.finals.find(id);
  if (i == self->state.finals.end())
    return std::nullopt;
  return i->second;
}

void remember_final(self_ptr self, const std::string& id, const std::string& status) {
  auto& st = self->state;
  if (st.finals.emplace(id, status).second)
    st.final_order.push_back(id);
  else
    st.finals[id] = status;
  while (st.final_order.size() > st.cfg.recent_finals) {
    st.finals.erase(st.final_order.front());
    st.final_order.pop_front();
  }
}

void expire(self_ptr self, const std::string& id, uint64_t wid) {
  auto i = self->state.waiting.find(id);
  if (i == self->state.waiting.end())
    return;
  auto& ws = i->second;
  for (auto w = ws.begin(); w != ws.end(); ++w) {
    if (w->id == wid) {
      auto on_timeout = std::move(w->on_timeout);
      ws.erase(w);
      if (ws.empty())
        self->state.waiting.erase(i);
      log::warning("cancel: no final from the runner in time", {{"job_id", id}});
      on_timeout();
      return;
    }
  }
}

/// Waits (at most cancel_wait) for the `final` of job `id`.
void wait_final(self_ptr self, const std::string& id,
                std::function<void(const std::string&)> on_final,
                std::function<void()> on_timeout) {
  auto& st = self->state;
  auto wid = ++st.next_waiter;
  st.waiting[id].push_back(canceller_state::waiter{wid, std::move(on_final), std::move(on_timeout)});
  self->request(st.sleeper, st.cfg.cancel_wait, tick_atom::value)
    .then([] {}, [=](caf::error&) { expire(self, id, wid); });
}

void ask_status(self_ptr self, const std::string& id, const std::string& user,
                cancel_promise rp, pass mode);

/// What a cancel answers once the job's final status on this node is known.
void resolve(self_ptr self, const std::string& id, const std::string& user, cancel_promise rp,
             const std::string& status, pass mode) {
  auto s = job::parse_status(status);
  if (s == job::status::cancelled) {
    rp.deliver(cancel_result{id, "cancelled"});
    return;
  }
  if (s && job::is_final(*s)) {
    rp.deliver(make_error(ec::invalid_transition,
                          job::transition_refusal(*s, job::status::cancelled)));
    return;
  }
  // pending: a drain requeued it first — the Redis half cancels it in the
  // queue now; running: the lease was lost — report what Redis says.
  ask_status(self, id, user, std::move(rp), mode == pass::initial ? pass::again : pass::report);
}

void cancel_here(self_ptr self, const std::string& id, const std::string& user,
                 cancel_promise rp, pass mode) {
  auto& st = self->state;
  if (mode == pass::initial)
    metrics::cancel_request("local");
  bool armed = st.registry->cancel(id, stop_reason::user_cancel, /*leave_tombstone*/ true);
  log::info("cancel: token fired", {{"job_id", id}, {"user", user},
                                    {"armed", armed ? "true" : "false"}});
  if (!armed) {
    if (auto f = recent_final(self, id)) {
      resolve(self, id, user, std::move(rp), *f, mode);
      return;
    }
  }
  wait_final(
    self, id,
    [=](const std::string& status) { resolve(self, id, user, rp, status, mode); },
    [=] { ask_status(self, id, user, rp, pass::report); });
}

/// After the pg_cancel_backend fallback signalled a backend: the runner that
/// owns it (on a node this one cannot reach) records the cancel, or the
/// node-loss sweep ends the job; either way Redis says what happened. Asks
/// until the job is final or `deadline` passes, then answers the truth: a
/// `running` answer means the cancel is not recorded (yet).
void await_record(self_ptr self, const std::string& id, const std::string& user,
                  cancel_promise rp, std::chrono::steady_clock::time_point deadline) {
  auto& st = self->state;
  self->request(st.status, st.cfg.status_timeout, cancel_atom::value, id, user)
    .then(
      [=](const pending_cancel& pc) mutable {
        auto s = job::parse_status(pc.status);
        bool still_running = !pc.cancelled && s == job::status::running;
        if (!still_running || self->clock().now() >= deadline) {
          // Final, pending (cancelled now), or out of time: as report.
          if (pc.cancelled || s == job::status::cancelled)
            rp.deliver(cancel_result{id, "cancelled"});
          else if (s && job::is_final(*s))
            rp.deliver(make_error(ec::invalid_transition,
                                  job::transition_refusal(*s, job::status::cancelled)));
          else if (pc.status.empty())
            rp.deliver(make_error(ec::job_not_found, "Job with id " + id + " not found"));
          else {
            log::warning("cancel: not recorded in time after pg_cancel_backend",
                         {{"job_id", id}, {"status", pc.status}});
            rp.deliver(cancel_result{id, pc.status});
          }
          return;
        }
        self->request(self->state.sleeper, self->state.cfg.record_poll, tick_atom::value)
          .then([] {}, [=](caf::error&) { await_record(self, id, user, rp, deadline); });
      },
      [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

void backend_fallback(self_ptr self, const std::string& id, const std::string& user,
                      cancel_promise rp) {
  auto backend = self->state.backend;
  if (!backend) {
    ask_status(self, id, user, std::move(rp), pass::report);
    return;
  }
  metrics::cancel_request("backend");
  auto helper = spawn_blocking<int>(
    self, [backend, id, user] { return backend->cancel_backends_of_job(id, user); });
  self->request(helper, self->state.cfg.cancel_wait, run_atom::value)
    .then(
      [=](int n) {
        log::info("cancel: pg_cancel_backend fallback",
                  {{"job_id", id}, {"backends", std::to_string(n)}});
        if (n > 0)
          await_record(self, id, user, rp, self->clock().now() + self->state.cfg.cancel_wait);
        else
          ask_status(self, id, user, rp, pass::report);
      },
      [=](caf::error& err) {
        log::warning("cancel: pg_cancel_backend fallback failed",
                     {{"job_id", id}, {"error", self->system().render(err)}});
        ask_status(self, id, user, rp, pass::report);
      });
}

void cancel_elsewhere(self_ptr self, const std::string& id, const std::string& user,
                      const std::string& node, cancel_promise rp) {
  auto dir = self->state.directory;
  if (node.empty() || !dir) {
    backend_fallback(self, id, user, std::move(rp));
    return;
  }
  auto wait = self->state.cfg.cancel_wait;
  auto helper = spawn_blocking<cluster_gate_actor>(
    self, [dir, node] { return dir->gate_of(node); });
  self->request(helper, wait, run_atom::value)
    .then(
      [=](cluster_gate_actor remote) {
        const auto& cfg = self->state.cfg;
        auto proof = auth::sign(cfg.cluster_secret, cfg.node_id, node, remote_cancel_kind, id,
                                cfg.now_ms());
        self->request(remote, wait * 2, remote_cancel_atom::value, id, std::move(proof))
          .then(
            [=](bool ran) {
              if (ran) {
                metrics::cancel_request("node");
                ask_status(self, id, user, rp, pass::report);
              } else {
                backend_fallback(self, id, user, rp);
              }
            },
            [=](caf::error& err) {
              log::warning("cancel: remote canceller failed",
                           {{"job_id", id}, {"target_node", node}, {"error", self->system().render(err)}});
              backend_fallback(self, id, user, rp);
            });
      },
      [=](caf::error& err) {
        log::warning("cancel: node unreachable",
                     {{"job_id", id}, {"target_node", node}, {"error", self->system().render(err)}});
        backend_fallback(self, id, user, rp);
      });
}

void ask_status(self_ptr self, const std::string& id, const std::string& user,
                cancel_promise rp, pass mode) {
  auto& st = self->state;
  self->request(st.status, st.cfg.status_timeout, cancel_atom::value, id, user)
    .then(
      [=](const pending_cancel& pc) mutable {
        if (pc.cancelled) {
          if (mode == pass::initial)
            metrics::cancel_request("pending");
          rp.deliver(cancel_result{id, "cancelled"});
          return;
        }
        if (pc.status.empty()) {
          rp.deliver(make_error(ec::job_not_found, "Job with id " + id + " not found"));
          return;
        }
        auto s = job::parse_status(pc.status);
        if (s && job::is_final(*s)) {
          if (mode != pass::initial && *s == job::status::cancelled)
            rp.deliver(cancel_result{id, "cancelled"});
          else
            rp.deliver(make_error(ec::invalid_transition,
                                  job::transition_refusal(*s, job::status::cancelled)));
          return;
        }
        if (s == job::status::running && mode != pass::report) {
          // Never a remote cancel to this node itself (SPEC §5 v2).
          if (pc.node == self->state.cfg.node_id)
            cancel_here(self, id, user, rp, mode);
          else
            cancel_elsewhere(self, id, user, pc.node, rp);
          return;
        }
        rp.deliver(cancel_result{id, pc.status});
      },
      [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

} // namespace

canceller_actor::behavior_type
canceller_behavior(canceller_actor::stateful_pointer<canceller_state> self,
                   canceller_settings cfg, status_actor status,
                   std::shared_ptr<pg::cancel_registry> registry,
                   std::shared_ptr<ports::node_directory> directory,
                   std::shared_ptr<ports::backend_cancel> backend, bool detached_helpers) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.registry = std::move(registry);
  st.directory = std::move(directory);
  st.backend = std::move(backend);
  st.detached_helpers = detached_helpers;
  st.sleeper = self->system().spawn(sleeper_behavior, st.cfg.node_id);
  self->attach_functor([sleeper = st.sleeper] {
    caf::anon_send_exit(sleeper, caf::exit_reason::user_shutdown);
  });
  return {
    [=](cancel_atom, const std::string& id,
        const std::string& user) -> caf::typed_response_promise<cancel_result> {
      auto rp = self->make_response_promise<cancel_result>();
      log::info("cancel requested", {{"job_id", id}, {"user", user}});
      ask_status(self, id, user, rp, pass::initial);
      return rp;
    },
    [=](remote_cancel_atom, const std::string& id) -> caf::typed_response_promise<bool> {
      auto rp = self->make_response_promise<bool>();
      bool armed = self->state.registry->cancel(id, stop_reason::user_cancel, true);
      log::info("remote cancel", {{"job_id", id}, {"armed", armed ? "true" : "false"}});
      if (!armed && recent_final(self, id)) {
        rp.deliver(true);
        return rp;
      }
      wait_final(
        self, id, [=](const std::string&) mutable { rp.deliver(true); },
        [=]() mutable { rp.deliver(false); });
      return rp;
    },
    [=](stop_atom, const std::string& user, const std::string& token, stop_reason why) {
      auto n = self->state.registry->cancel_user(user, token, why);
      log::info("stop user", {{"user", user},
                              {"reason", to_string(why)},
                              {"fired", std::to_string(n)}});
    },
    [=](final_atom, const std::string& id, const std::string& status) {
      remember_final(self, id, status);
      auto i = self->state.waiting.find(id);
      if (i == self->state.waiting.end())
        return;
      auto ws = std::move(i->second);
      self->state.waiting.erase(i);
      for (auto& w : ws)
        w.on_final(status);
    },
  };
}

canceller_actor spawn_canceller(caf::actor_system& sys, const canceller_settings& cfg,
                                status_actor status,
                                std::shared_ptr<pg::cancel_registry> registry,
                                std::shared_ptr<ports::node_directory> directory,
                                std::shared_ptr<ports::backend_cancel> backend, bool detached) {
  return sys.spawn(canceller_behavior, cfg, std::move(status), std::move(registry),
                   std::move(directory), std::move(backend), detached);
}

} // namespace batchq
