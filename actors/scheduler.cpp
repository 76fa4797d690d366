#include "actors/spawn.hpp"
#include "actors/scheduler.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/error.hpp"
#include "src/config/settings.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/redis/ops.hpp"

namespace batchq {

scheduler_settings scheduler_settings::from(const settings& s) {
  scheduler_settings x;
  x.capacity = s.batch_capacity;
  x.lease_ttl = std::chrono::milliseconds{s.batch_lease_ttl};
  x.shutdown_grace = std::chrono::seconds{s.batch_shutdown_grace};
  x.sweep_interval = std::chrono::seconds{s.batch_sweep_interval};
  return x;
}

namespace {

/// Internal timer message: time for the orphaned work-in-progress sweep.
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;

/// The scheduler's own handle type: the public interface plus two internal
/// timer messages, `(drain, tick)`: the drain's grace period is over, and
/// `(sweep)`: time for the crash sweep. Others only ever see the public
/// `scheduler_actor`.
using scheduler_impl =
  scheduler_actor::extend<caf::reacts_to<drain_atom, tick_atom>, caf::reacts_to<sweep_atom>>;

/// Capacity bucket of users whose `rails:users` record has no database_host.
const std::string unknown_host = "unknown";

/// The grants history kept for `stats` (oldest dropped first).
constexpr size_t max_grants_kept = 4096;

/// A user this node holds the lease of.
struct user_entry {
  std::string lease_token;
  user_queue_actor queue;
  /// A turn was granted and neither `done` nor `idle` has come back yet.
  bool running = false;
  /// Statements run so far (fairness: fewest first).
  int64_t statements_run = 0;
  /// Event sequence number at which the user (re)started waiting (fairness:
  /// longest waiting first). A counter rather than a clock: strictly ordered.
  uint64_t waiting_since = 0;
  /// Capacity bucket (database host or unknown_host); looked up once per stay.
  std::optional<std::string> host;
  /// The held capacity slot while running.
  std::string slot;
};

struct scheduler_state {
  scheduler_settings cfg;
  std::shared_ptr<ports::coordination> coord;
  canceller_actor canceller;
  user_queue_factory make_queue;

  std::map<std::string, user_entry> users;
  uint64_t seq = 0;
  std::deque<std::string> grants;

  /// Drain: no new users, no new turns.
  bool draining = false;
  /// The grace period is over and the canceller was asked to stop what runs.
  bool stopping = false;
  /// Everything is released; the report is final.
  bool drained = false;
  drain_report report;
  std::vector<caf::typed_response_promise<drain_report>> drain_waiters;

  /// Best effort on exit without a drain: give back slots and leases so that
  /// other nodes need not wait for their TTL, and stop the user_queues.
  ~scheduler_state() {
    for (auto& [user, e] : users) {
      if (e.running && e.host)
        coord->release_slot(*e.host, e.slot);
      coord->release_lease(user, e.lease_token);
      caf::anon_send_exit(e.queue, caf::exit_reason::user_shutdown);
    }
  }

  static inline const char* name = "scheduler";
};

using self_ptr = scheduler_impl::stateful_pointer<scheduler_state>;

std::chrono::milliseconds tick_period(const scheduler_settings& cfg) {
  return std::max(cfg.lease_ttl / 5, std::chrono::milliseconds{1});
}

std::string render(const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? caf::to_string(err) : text;
}

/// Ends the running turn of `e`: gives its capacity slot back.
void end_turn(self_ptr self, user_entry& e) {
  if (!e.running)
    return;
  e.running = false;
  if (auto r = self->state.coord->release_slot(*e.host, e.slot); !r)
    log::warning("capacity slot release failed",
                 {{"host", *e.host}, {"error", render(r.error())}});
  e.slot.clear();
}

/// Forgets `user` (its lease already released or lost) and stops its user_queue.
void forget(self_ptr self, const std::string& user) {
  auto i = self->state.users.find(user);
  if (i == self->state.users.end())
    return;
  self->send_exit(i->second.queue, caf::exit_reason::user_shutdown);
  self->state.users.erase(i);
}

/// Releases the lease of a user that is not running and forgets the user.
void release(self_ptr self, const std::string& user) {
  auto i = self->state.users.find(user);
  if (i == self->state.users.end())
    return;
  if (auto r = self->state.coord->release_lease(user, i->second.lease_token); !r)
    log::warning("user lease release failed", {{"user", user}, {"error", render(r.error())}});
  forget(self, user);
}

/// The last grant of `user` found its queue empty: strike it from the history,
/// so that `grants` lists the turns that ran a job.
void strike_grant(self_ptr self, const std::string& user) {
  auto& g = self->state.grants;
  auto i = std::find(g.rbegin(), g.rend(), user);
  if (i != g.rend())
    g.erase(std::next(i).base());
}

/// Waiting users in serving order: fewest statements run, then longest waiting.
std::vector<std::string> waiting_order(const scheduler_state& st) {
  std::vector<std::pair<const std::string*, const user_entry*>> w;
  for (auto& [user, e] : st.users)
    if (!e.running)
      w.emplace_back(&user, &e);
  std::sort(w.begin(), w.end(), [](const auto& a, const auto& b) {
    if (a.second->statements_run != b.second->statements_run)
      return a.second->statements_run < b.second->statements_run;
    return a.second->waiting_since < b.second->waiting_since;
  });
  std::vector<std::string> out;
  out.reserve(w.size());
  for (auto& x : w)
    out.push_back(*x.first);
  return out;
}

/// Grants turns to waiting users, in order, while their hosts have capacity.
/// A host found full is skipped for the rest of this round (retried on the next
/// event or tick); a Redis failure ends the round.
void grant(self_ptr self) {
  auto& st = self->state;
  if (st.draining)
    return;
  std::set<std::string> full;
  for (const auto& user : waiting_order(st)) {
    auto& e = st.users.at(user);
    if (!e.host) {
      auto h = st.coord->database_host(user);
      if (!h) {
        log::warning("database host lookup failed", {{"user", user}, {"error", render(h.error())}});
        return;
      }
      e.host = h->empty() ? unknown_host : *h;
    }
    if (full.count(*e.host) > 0)
      continue;
    auto slot = redis::random_token();
    auto got = st.coord->acquire_slot(*e.host, st.cfg.capacity, slot, st.cfg.lease_ttl);
    if (!got) {
      log::warning("capacity slot acquire failed",
                   {{"host", *e.host}, {"error", render(got.error())}});
      return;
    }
    if (!*got) {
      full.insert(*e.host);
      continue;
    }
    e.running = true;
    e.slot = std::move(slot);
    st.grants.push_back(user);
    if (st.grants.size() > max_grants_kept)
      st.grants.pop_front();
    log::debug("turn granted", {{"user", user}, {"host", *e.host}});
    self->send(e.queue, run_atom::value);
  }
}

/// Completes the drain once nothing runs: releases every lease left, stops all
/// user_queues and answers every waiting `drain`.
void maybe_finish_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.draining || st.drained)
    return;
  for (auto& [user, e] : st.users)
    if (e.running)
      return;
  std::vector<std::string> left;
  for (auto& kv : st.users)
    left.push_back(kv.first);
  for (auto& user : left)
    release(self, user);
  st.drained = true;
  log::info("drain finished", {{"finished", std::to_string(st.report.finished)},
                               {"requeued", std::to_string(st.report.requeued)}});
  for (auto& rp : st.drain_waiters)
    rp.deliver(st.report);
  st.drain_waiters.clear();
}

/// Renews every held lease and slot. A lease that cannot be renewed is lost:
/// the canceller stops the user's running statement at once and the user is
/// dropped (its job is no longer ours to write). A Redis failure is only
/// logged: the lease may still be valid, the next tick retries.
void renew(self_ptr self) {
  auto& st = self->state;
  std::vector<std::string> lost;
  for (auto& [user, e] : st.users) {
    auto r = st.coord->renew_lease(user, e.lease_token, st.cfg.lease_ttl);
    if (!r) {
      log::warning("user lease renewal failed", {{"user", user}, {"error", render(r.error())}});
      continue;
    }
    if (!*r) {
      lost.push_back(user);
      continue;
    }
    if (!e.running)
      continue;
    auto s = st.coord->renew_slot(*e.host, e.slot, st.cfg.lease_ttl);
    if (s && !*s) {
      // The slot expired (e.g. Redis was unreachable for a TTL): the statement
      // still runs, so take the slot again if the host has room.
      s = st.coord->acquire_slot(*e.host, st.cfg.capacity, e.slot, st.cfg.lease_ttl);
      if (s && !*s)
        log::warning("capacity slot expired while running", {{"user", user}, {"host", *e.host}});
    }
    if (!s)
      log::warning("capacity slot renewal failed",
                   {{"host", *e.host}, {"error", render(s.error())}});
  }
  for (const auto& user : lost) {
    auto& e = st.users.at(user);
    log::warning("user lease lost", {{"user", user}, {"running", e.running ? "true" : "false"}});
    if (e.running) {
      self->send(st.canceller, stop_atom::value, user, stop_reason::lease_lost);
      end_turn(self, e);
    }
    forget(self, user);
  }
  if (!lost.empty())
    maybe_finish_drain(self);
}

/// `wants` and the crash sweep: serves `user` unless draining or already
/// known — takes its lease (another node holding it: nothing to do), creates
/// its user_queue and grants turns.
void serve(self_ptr self, const std::string& user) {
  auto& st = self->state;
  if (st.draining || st.users.count(user) > 0)
    return;
  auto token = redis::random_token();
  auto got = st.coord->acquire_lease(user, token, st.cfg.lease_ttl);
  if (!got) {
    log::warning("user lease acquire failed", {{"user", user}, {"error", render(got.error())}});
    return;
  }
  if (!*got) {
    log::debug("user served by another node", {{"user", user}});
    return;
  }
  user_entry e;
  e.lease_token = token;
  e.waiting_since = ++st.seq;
  e.queue = st.make_queue(self->system(), user, token, caf::actor_cast<scheduler_actor>(self));
  st.users.emplace(user, std::move(e));
  log::debug("user lease acquired", {{"user", user}});
  grant(self);
}

/// The crash sweep (SPEC §7): serves every user whose work in progress has no
/// lease holder. A Redis failure is logged; the next sweep retries.
void sweep(self_ptr self) {
  auto& st = self->state;
  auto orphans = st.coord->orphaned_users();
  if (!orphans) {
    log::warning("orphan sweep failed", {{"error", render(orphans.error())}});
    return;
  }
  for (const auto& user : *orphans) {
    if (st.draining || st.users.count(user) > 0)
      continue;
    log::info("orphaned work in progress found", {{"user", user}});
    serve(self, user);
  }
}

scheduler_impl::behavior_type scheduler(self_ptr self) {
  self->delayed_send(self, tick_period(self->state.cfg), tick_atom::value);
  self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
  return {
    [=](wants_atom, const std::string& user) { serve(self, user); },
    [=](sweep_atom) {
      // Draining: the node is leaving; other nodes sweep (no re-arm).
      if (self->state.draining)
        return;
      sweep(self);
      self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
    },
    [=](done_atom, const std::string& user, const job_summary& summary) {
      auto& st = self->state;
      auto i = st.users.find(user);
      if (i == st.users.end() || !i->second.running) {
        log::warning("done from a user without a turn", {{"user", user}});
        return;
      }
      auto& e = i->second;
      end_turn(self, e);
      e.statements_run += summary.statements_run;
      if (st.draining) {
        auto status = job::parse_status(summary.status);
        if (status == job::status::pending)
          ++st.report.requeued;
        else if (status && job::is_final(*status))
          ++st.report.finished;
        release(self, user);
        maybe_finish_drain(self);
        return;
      }
      e.waiting_since = ++st.seq;
      grant(self);
    },
    [=](idle_atom, const std::string& user) {
      auto& st = self->state;
      auto i = st.users.find(user);
      if (i == st.users.end() || !i->second.running) {
        log::warning("idle from a user without a turn", {{"user", user}});
        return;
      }
      auto& e = i->second;
      end_turn(self, e);
      strike_grant(self, user);
      if (st.draining) {
        release(self, user);
        maybe_finish_drain(self);
        return;
      }
      auto r = st.coord->release_lease_if_idle(user, e.lease_token);
      if (r && *r) {
        log::debug("user idle, lease released", {{"user", user}});
        forget(self, user);
      } else if (!r && is(r.error(), ec::lease_lost)) {
        log::warning("user lease lost", {{"user", user}, {"running", "false"}});
        forget(self, user);
      } else {
        // Jobs arrived after the last dequeue (or Redis failed): keep serving.
        if (!r)
          log::warning("user lease release failed",
                       {{"user", user}, {"error", render(r.error())}});
        e.waiting_since = ++st.seq;
      }
      grant(self);
    },
    [=](tick_atom) {
      renew(self);
      grant(self);
      self->delayed_send(self, tick_period(self->state.cfg), tick_atom::value);
    },
    [=](drain_atom) -> caf::typed_response_promise<drain_report> {
      auto& st = self->state;
      auto rp = self->make_response_promise<drain_report>();
      if (st.drained) {
        rp.deliver(st.report);
        return rp;
      }
      st.drain_waiters.push_back(rp);
      if (st.draining)
        return rp;
      st.draining = true;
      std::vector<std::string> waiting;
      for (auto& [user, e] : st.users)
        if (!e.running)
          waiting.push_back(user);
      for (auto& user : waiting) {
        release(self, user);
        // Hand the user over: another node serves it now, not at its next rescan.
        if (auto r = st.coord->announce(user); !r)
          log::warning("announce failed", {{"user", user}, {"error", render(r.error())}});
      }
      log::info("drain started", {{"running", std::to_string(st.users.size())}});
      maybe_finish_drain(self);
      if (!st.drained)
        self->delayed_send(self, st.cfg.shutdown_grace, drain_atom::value, tick_atom::value);
      return rp;
    },
    [=](drain_atom, tick_atom) {
      auto& st = self->state;
      if (!st.draining || st.drained)
        return;
      if (!st.stopping) {
        // Grace is over: stop what still runs; each runner requeues its job
        // and its user_queue reports `done`.
        st.stopping = true;
        for (auto& [user, e] : st.users) {
          if (e.running) {
            log::info("drain stops user", {{"user", user}});
            self->send(st.canceller, stop_atom::value, user, stop_reason::drain);
          }
        }
        self->delayed_send(self, st.cfg.shutdown_grace, drain_atom::value, tick_atom::value);
        return;
      }
      // A second grace period passed without `done`: give up waiting.
      std::vector<std::string> left;
      for (auto& [user, e] : st.users) {
        log::warning("drain gave up waiting for user", {{"user", user}});
        end_turn(self, e);
        left.push_back(user);
      }
      for (auto& user : left)
        release(self, user);
      maybe_finish_drain(self);
    },
    [=](stats_atom) {
      auto& st = self->state;
      scheduler_stats s;
      s.waiting = waiting_order(st);
      for (auto& [user, e] : st.users)
        if (e.running)
          s.running.push_back(user);
      s.grants.assign(st.grants.begin(), st.grants.end());
      return s;
    },
  };
}

} // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys, const scheduler_settings& cfg,
                                std::shared_ptr<ports::coordination> coordination,
                                canceller_actor canceller, user_queue_factory make_queue,
                                bool detached) {
  auto init = [=](self_ptr self) {
    self->state.cfg = cfg;
    self->state.coord = coordination;
    self->state.canceller = canceller;
    self->state.make_queue = make_queue;
    return scheduler(self);
  };
  scheduler_impl h = spawn_maybe_detached(sys, detached, init);
  return h;
}

} // namespace batchq
