#include "actors/scheduler.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/error.hpp"
#include "src/config/settings.hpp"
#include "src/log/log.hpp"
#include "src/redis/ops.hpp"

namespace batchq {

scheduler_settings scheduler_settings::from(const settings& s) {
  scheduler_settings x;
  x.capacity = s.batch_capacity;
  x.max_running = s.batch_max_running;
  x.lease_ttl = std::chrono::milliseconds{s.batch_lease_ttl};
  x.shutdown_grace = std::chrono::seconds{s.batch_shutdown_grace};
  x.sweep_interval = std::chrono::seconds{s.batch_sweep_interval};
  x.turn_slice = std::chrono::milliseconds{s.batch_turn_slice};
  return x;
}

namespace {

using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using slice_atom = caf::atom_constant<caf::atom("slice")>;

/// The scheduler's own handle type: the public interface plus its timers:
/// `(sweep)` the crash sweep, `(deadline, n)` the earliest lease deadline of
/// a running turn, `(grace)` the drain's grace is over, `(drain, tick)` the
/// drain's bound is over, `(slice, n)` the earliest slice of a contended turn
/// is over (`n`: the timer's number; only the last one armed counts). Others
/// only ever see the public `scheduler_actor`.
using scheduler_impl = scheduler_actor::extend<
  caf::reacts_to<sweep_atom>, caf::reacts_to<deadline_atom, uint64_t>, caf::reacts_to<grace_atom>,
  caf::reacts_to<drain_atom, tick_atom>, caf::reacts_to<slice_atom, uint64_t>>;

using time_point = caf::actor_clock::time_point;

/// Capacity bucket of users whose `rails:users` record has no database_host.
const std::string unknown_host = "unknown";

/// The grants history kept for `stats` (oldest dropped first).
constexpr size_t max_grants_kept = 4096;

/// Users whose host is looked up in one round trip.
constexpr size_t host_batch = 64;

/// Serving order: first the users with work this node could not finish
/// writing (its own fenced turns: settled before their leases run out in
/// Redis, so no other node reports them lost), then fairness: fewest
/// statements run, then longest waiting (a sequence number, strictly ordered).
using fair_key = std::tuple<int, int64_t, uint64_t>;

/// A user waiting in the line: holds nothing in Redis.
struct waiting_user {
  std::optional<std::string> host;
  int64_t statements_run = 0;
  uint64_t since = 0;
  std::vector<unsettled_job> carry;
  /// The token of this node's last turn of the user when it ended fenced.
  std::string inherit;
  /// Not served before this time (a user with a carry that found its lease
  /// held elsewhere tries again a tick later).
  time_point not_before;
  fair_key key() const {
    return {carry.empty() && inherit.empty() ? 1 : 0, statements_run, since};
  }
};

/// A turn running on this node.
struct running_turn {
  std::string token;
  std::string host;
  std::string slot;
  user_queue_actor queue;
  /// The lease is known to be held (renewals include it).
  bool started = false;
  bool fenced = false;
  bool yielded = false;
  /// Someone waits for its host: it yields at granted_at + turn_slice.
  bool sliced = false;
  bool stopped = false;
  /// `wants` came while it ran: a job may have been queued after its last look.
  bool wanted = false;
  int64_t statements_run = 0;
  uint64_t since = 0;
  /// The lease this turn was told to take over (turn_grant::inherit).
  std::string inherit;
  std::shared_ptr<pg::lease_deadline> deadline;
  time_point deadline_at;
  time_point granted_at;
  /// Shared with the turn's user_queue and runner (turn_flags.hpp).
  std::shared_ptr<turn_flags> flags = std::make_shared<turn_flags>();
};

struct scheduler_state {
  scheduler_settings cfg;
  coordination_actor coord;
  canceller_actor canceller;
  std::shared_ptr<pg::cancel_registry> registry;
  user_queue_factory make_queue;

  std::map<std::string, waiting_user> line;
  /// The line by capacity bucket, fairest first; users of unknown host apart.
  std::map<std::string, std::set<std::pair<fair_key, std::string>>> by_host;
  std::set<std::pair<fair_key, std::string>> unknown;
  std::map<std::string, running_turn> turns;
  std::map<std::string, int64_t> running_on;
  /// Hosts found at capacity (cleared by a local release there, or a tick).
  std::set<std::string> full;
  /// Looked-up hosts and when.
  std::map<std::string, std::pair<std::string, time_point>> host_cache;
  /// Per user, the orphans its last turn here left to their live owners.
  std::map<std::string, std::vector<orphan_sighting>> deferred;
  bool lookup_in_flight = false;
  time_point last_lookup;
  bool renew_in_flight = false;
  /// One timer for the earliest of the running turns' lease deadlines, one
  /// for the earliest slice end: not one per turn, since on the paths of one
  /// job per user every grant would set a timer that fires for a turn long
  /// gone.
  struct one_timer {
    bool armed = false;
    time_point at;
    uint64_t number = 0;
  };
  one_timer deadline_timer;
  one_timer slice_timer;
  uint64_t seq = 0;
  std::deque<std::string> grants;

  bool draining = false;
  bool grace_over = false;
  bool drained = false;
  drain_report report;
  std::vector<caf::typed_response_promise<drain_report>> drain_waiters;

  static inline const char* name = "scheduler";
};

using self_ptr = scheduler_impl::stateful_pointer<scheduler_state>;

std::chrono::milliseconds tick_period(const scheduler_settings& cfg) {
  return std::max(cfg.lease_ttl / 5, std::chrono::milliseconds{1});
}

/// When a lease taken or renewed by a request sent at `sent` stops being
/// trusted here: ttl - ttl/5 after it, well before Redis lets it expire.
time_point deadline_after(const scheduler_settings& cfg, time_point sent) {
  return sent + cfg.lease_ttl - tick_period(cfg);
}

std::string render(self_ptr self, const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? self->system().render(err) : text;
}

// -- the line ------------------------------------------------------------------

void index_waiting(self_ptr self, const std::string& user, const waiting_user& w) {
  auto& st = self->state;
  if (w.host)
    st.by_host[*w.host].emplace(w.key(), user);
  else
    st.unknown.emplace(w.key(), user);
}

void unindex_waiting(self_ptr self, const std::string& user, const waiting_user& w) {
  auto& st = self->state;
  if (w.host) {
    auto i = st.by_host.find(*w.host);
    if (i != st.by_host.end()) {
      i->second.erase({w.key(), user});
      if (i->second.empty())
        st.by_host.erase(i);
    }
  } else {
    st.unknown.erase({w.key(), user});
  }
}

int64_t running_count(const scheduler_state& st, const std::string& host) {
  auto i = st.running_on.find(host);
  return i == st.running_on.end() ? 0 : i->second;
}

/// Puts `user` in the line (no-op when it waits or runs already). `host`: the
/// user's host when known (a user back from a turn), else the cache's.
void enqueue(self_ptr self, const std::string& user, int64_t statements_run,
             std::vector<unsettled_job> carry, std::optional<uint64_t> since = std::nullopt,
             std::optional<std::string> host = std::nullopt, std::string inherit = {}) {
  auto& st = self->state;
  if (st.line.count(user) > 0 || st.turns.count(user) > 0)
    return;
  waiting_user w;
  w.statements_run = statements_run;
  w.since = since ? *since : ++st.seq;
  w.carry = std::move(carry);
  w.inherit = std::move(inherit);
  w.host = std::move(host);
  auto c = st.host_cache.find(user);
  if (!w.host && c != st.host_cache.end()
      && self->clock().now() - c->second.second < st.cfg.host_cache_ttl)
    w.host = c->second.first;
  index_waiting(self, user, w);
  st.line.emplace(user, std::move(w));
}

void leave_line(self_ptr self, const std::string& user) {
  auto& st = self->state;
  auto i = st.line.find(user);
  if (i == st.line.end())
    return;
  unindex_waiting(self, user, i->second);
  st.line.erase(i);
}

/// Whether somebody in the line may want a slot of `host` (same host, or
/// a host not known yet).
bool someone_waits_for(const scheduler_state& st, const std::string& host) {
  return !st.unknown.empty() || st.by_host.count(host) > 0;
}

void grant(self_ptr self);

/// Looks up the hosts of the fairest users whose host is unknown.
void look_up_hosts(self_ptr self) {
  auto& st = self->state;
  if (st.lookup_in_flight || st.unknown.empty())
    return;
  std::vector<std::string> users;
  for (auto& [key, user] : st.unknown) {
    users.push_back(user);
    if (users.size() >= host_batch)
      break;
  }
  st.lookup_in_flight = true;
  self->request(st.coord, tick_period(st.cfg) * 4, hosts_atom::value, users)
    .then(
      [=](const std::vector<std::string>& hosts) {
        auto& st = self->state;
        st.lookup_in_flight = false;
        auto now = self->clock().now();
        for (size_t i = 0; i < users.size() && i < hosts.size(); ++i) {
          auto host = hosts[i].empty() ? unknown_host : hosts[i];
          st.host_cache[users[i]] = {host, now};
          auto w = st.line.find(users[i]);
          if (w == st.line.end() || w->second.host)
            continue;
          unindex_waiting(self, users[i], w->second);
          w->second.host = host;
          index_waiting(self, users[i], w->second);
        }
        grant(self);
      },
      [=](caf::error& err) {
        self->state.lookup_in_flight = false;
        log::warning("database host lookup failed", {{"error", render(self, err)}});
        // Retried by the next tick's grant.
      });
}

// -- turns ---------------------------------------------------------------------

/// Arms `timer` for `at` unless it fires at `at` or before; true if armed.
bool arm_before(scheduler_state::one_timer& timer, time_point at) {
  if (timer.armed && timer.at <= at)
    return false;
  timer.armed = true;
  timer.at = at;
  ++timer.number;
  return true;
}

caf::timespan delay_until(self_ptr self, time_point at) {
  auto delay = at - self->clock().now();
  if (delay < decltype(delay)::zero())
    delay = decltype(delay)::zero();
  return std::chrono::duration_cast<caf::timespan>(delay);
}

void watch_deadline(self_ptr self, time_point at) {
  auto& timer = self->state.deadline_timer;
  if (arm_before(timer, at))
    self->delayed_send(self, delay_until(self, at), deadline_atom::value, timer.number);
}

void arm_deadline(self_ptr self, running_turn& t, time_point at) {
  t.deadline_at = at;
  t.deadline->set(at);
  watch_deadline(self, at);
}

void fence(self_ptr self, const std::string& user, running_turn& t, const char* why);

/// The deadline timer: every turn whose deadline passed without a renewal
/// moving it is fenced; the timer is armed again for the next deadline.
void on_deadline(self_ptr self) {
  auto& st = self->state;
  st.deadline_timer.armed = false;
  auto now = self->clock().now();
  std::optional<time_point> next;
  for (auto& [user, t] : st.turns) {
    if (t.fenced)
      continue;
    if (now >= t.deadline_at)
      fence(self, user, t, "lease deadline passed without a renewal");
    else if (!next || t.deadline_at < *next)
      next = t.deadline_at;
  }
  if (next)
    watch_deadline(self, *next);
}

/// Tells a running turn to end after its job.
void yield_turn(self_ptr self, running_turn& t) {
  t.yielded = true;
  t.flags->go_on = false;
  self->send(t.queue, yield_atom::value, t.token);
}

/// Someone waits for the host of `t`, which may go on until its slice is
/// over: one `slice` timer serves every such turn (the earliest end first).
void watch_slice(self_ptr self, running_turn& t) {
  auto& st = self->state;
  t.sliced = true;
  auto at = t.granted_at + st.cfg.turn_slice;
  if (arm_before(st.slice_timer, at))
    self->delayed_send(self, delay_until(self, at), slice_atom::value, st.slice_timer.number);
}

/// The `slice` timer: every contended turn whose slice is over yields; the
/// timer is armed again for the next one.
void on_slice(self_ptr self) {
  auto& st = self->state;
  st.slice_timer.armed = false;
  auto now = self->clock().now();
  std::vector<running_turn*> later;
  for (auto& [user, t] : st.turns) {
    if (!t.sliced || t.yielded || t.fenced)
      continue;
    t.sliced = false;
    if (!someone_waits_for(st, t.host))
      continue; // nobody waits any more: it goes on (watched again when someone does)
    if (now >= t.granted_at + st.cfg.turn_slice)
      yield_turn(self, t);
    else
      later.push_back(&t);
  }
  for (auto* t : later)
    watch_slice(self, *t);
}

void start_turn(self_ptr self, const std::string& user) {
  auto& st = self->state;
  auto wi = st.line.find(user);
  auto w = std::move(wi->second);
  unindex_waiting(self, user, w);
  st.line.erase(wi);
  running_turn t;
  t.token = redis::random_token();
  t.slot = redis::random_token();
  t.host = *w.host;
  t.statements_run = w.statements_run;
  t.since = w.since;
  t.deadline = st.registry->lease(t.token);
  turn_grant g;
  g.user = user;
  g.token = t.token;
  g.host = t.host;
  g.slot = t.slot;
  g.capacity = st.cfg.capacity;
  g.lease_ttl_ms = st.cfg.lease_ttl.count();
  // Someone waits: the turn goes on for its slice (one job if the slice is 0).
  bool contended = someone_waits_for(st, t.host);
  g.budget = st.draining                                    ? 0
             : contended && st.cfg.turn_slice.count() == 0 ? 1
                                                           : st.cfg.turn_jobs;
  g.carry = std::move(w.carry);
  g.inherit = std::move(w.inherit);
  if (auto d = st.deferred.find(user); d != st.deferred.end())
    g.deferred = d->second;
  t.inherit = g.inherit;
  t.yielded = g.budget <= 1;
  auto now = self->clock().now();
  t.granted_at = now;
  if (t.yielded)
    t.flags->go_on = false; // a turn of one job (someone waits) or of none (drain)
  t.queue = st.make_queue(self->system(), g, caf::actor_cast<scheduler_actor>(self), t.flags);
  ++st.running_on[t.host];
  auto [it, added] = st.turns.emplace(user, std::move(t));
  arm_deadline(self, it->second, deadline_after(st.cfg, now));
  if (contended && !it->second.yielded)
    watch_slice(self, it->second);
  st.grants.push_back(user);
  if (st.grants.size() > max_grants_kept)
    st.grants.pop_front();
  log::debug("turn granted", {{"user", user},
                              {"host", it->second.host},
                              {"budget", std::to_string(g.budget)},
                              {"carry", std::to_string(g.carry.size())}});
  self->send(it->second.queue, run_atom::value);
}

/// Tells running turns of hosts somebody waits for to end after their job,
/// once their slice (from their grant) is over.
void yield_for_waiting(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  for (auto& [user, t] : st.turns) {
    if (t.yielded || t.fenced || t.sliced || !someone_waits_for(st, t.host))
      continue;
    if (now >= t.granted_at + st.cfg.turn_slice)
      yield_turn(self, t);
    else
      watch_slice(self, t);
  }
}

/// The fairest waiting user of known host who may run now; nullopt when none.
std::optional<std::string> pick(self_ptr self) {
  auto& st = self->state;
  const std::pair<fair_key, std::string>* best = nullptr;
  for (auto& [host, users] : st.by_host) {
    if (st.full.count(host) > 0 || running_count(st, host) >= st.cfg.capacity)
      continue;
    for (auto& u : users) {
      // Draining: only users with something to settle get a (settle-only) turn.
      const auto& w = st.line.at(u.second);
      if (st.draining && w.carry.empty())
        continue;
      if (w.not_before > self->clock().now())
        continue;
      if (best == nullptr || u < *best)
        best = &u;
      break;
    }
  }
  if (best == nullptr)
    return std::nullopt;
  return best->second;
}

/// Looks up more hosts when few users of known host wait (so a turn can start
/// as soon as a slot frees), or — at most once per tick, and only while not
/// too many wait already — when nobody known can run and this node has room
/// (the unknown ones may be on a host with free slots). So a herd of any size
/// costs one lookup per `host_batch` users served, plus at most one per tick.
void maybe_look_up(self_ptr self, bool someone_runnable) {
  auto& st = self->state;
  if (st.lookup_in_flight || st.unknown.empty() || st.draining)
    return;
  auto known = st.line.size() - st.unknown.size();
  auto now = self->clock().now();
  bool room = static_cast<int64_t>(st.turns.size()) < st.cfg.max_running;
  if (known < host_batch
      || (room && !someone_runnable && known < 4 * host_batch
          && now - st.last_lookup >= tick_period(st.cfg))) {
    st.last_lookup = now;
    look_up_hosts(self);
  }
}

/// Starts turns while this node has room, fairest first.
void grant(self_ptr self) {
  auto& st = self->state;
  if (st.drained)
    return;
  bool runnable = false;
  while (true) {
    auto user = pick(self);
    if (user)
      runnable = true;
    if (!user || static_cast<int64_t>(st.turns.size()) >= st.cfg.max_running)
      break;
    start_turn(self, *user);
  }
  maybe_look_up(self, runnable);
  if (!st.draining)
    yield_for_waiting(self);
}

/// The lease of `user`'s turn is no longer trusted: stop its statement, tell
/// its user_queue to send nothing more. The turn ends with the user_queue's
/// report.
void fence(self_ptr self, const std::string& user, running_turn& t, const char* why) {
  if (t.fenced)
    return;
  t.fenced = true;
  t.flags->go_on = false;
  t.flags->fenced = true;
  t.deadline->set(self->clock().now());
  log::warning("turn fenced", {{"user", user}, {"why", why}});
  self->send(self->state.canceller, stop_atom::value, user, t.token, stop_reason::lease_lost);
  self->send(t.queue, fence_atom::value, t.token);
}

/// Renews every started turn's lease and slot, one round trip.
void renew(self_ptr self) {
  auto& st = self->state;
  if (st.renew_in_flight)
    return;
  std::vector<held_lease> held;
  std::vector<std::string> users;
  for (auto& [user, t] : st.turns)
    if (t.started && !t.fenced) {
      held.push_back(held_lease{user, t.token, t.host, t.slot});
      users.push_back(user);
    }
  if (held.empty())
    return;
  auto sent = self->clock().now();
  st.renew_in_flight = true;
  self->request(st.coord, tick_period(st.cfg) * 2, renew_atom::value, held,
                static_cast<int64_t>(st.cfg.lease_ttl.count()))
    .then(
      [=](const std::vector<std::string>& lost) {
        auto& st = self->state;
        st.renew_in_flight = false;
        std::set<std::string> gone(lost.begin(), lost.end());
        for (size_t i = 0; i < held.size(); ++i) {
          auto t = st.turns.find(users[i]);
          if (t == st.turns.end() || t->second.token != held[i].token || t->second.fenced)
            continue;
          if (gone.count(held[i].token) > 0)
            fence(self, users[i], t->second, "the lease is gone");
          else
            arm_deadline(self, t->second, deadline_after(st.cfg, sent));
        }
      },
      [=](caf::error& err) {
        self->state.renew_in_flight = false;
        // The leases may still be valid: the deadlines fence them if not.
        log::warning("lease renewal failed", {{"error", render(self, err)},
                                              {"leases", std::to_string(held.size())}});
      });
}

void maybe_finish_drain(self_ptr self, bool give_up = false) {
  auto& st = self->state;
  if (!st.draining || st.drained)
    return;
  int32_t unsettled = 0;
  for (auto& [user, w] : st.line)
    unsettled += static_cast<int32_t>(w.carry.size());
  if (!give_up && (!st.turns.empty() || unsettled > 0))
    return;
  st.drained = true;
  st.report.unsettled = unsettled + static_cast<int32_t>(st.turns.size());
  for (auto& [user, t] : st.turns)
    log::error("drain gave up on a turn that did not end", {{"user", user}});
  for (auto& [user, w] : st.line)
    if (!w.carry.empty())
      log::error("drain could not write back a job", {{"user", user},
                                                       {"job_id", w.carry.front().job_id}});
  auto lvl = st.report.unsettled > 0 ? log::level::error : log::level::info;
  log::write(lvl, "drain finished", {{"finished", std::to_string(st.report.finished)},
                                     {"requeued", std::to_string(st.report.requeued)},
                                     {"unsettled", std::to_string(st.report.unsettled)}});
  for (auto& rp : st.drain_waiters)
    rp.deliver(st.report);
  st.drain_waiters.clear();
}

void on_ended(self_ptr self, turn_report& r) {
  auto& st = self->state;
  auto i = st.turns.find(r.user);
  if (i == st.turns.end() || i->second.token != r.token) {
    log::debug("report of an older turn ignored", {{"user", r.user}});
    return;
  }
  auto t = std::move(i->second);
  st.turns.erase(i);
  st.registry->forget_lease(t.token);
  if (--st.running_on[t.host] <= 0)
    st.running_on.erase(t.host);
  if (st.draining) {
    st.report.finished += r.finished;
    st.report.requeued += r.requeued;
  }
  if (r.jobs == 0 && !st.grants.empty()) {
    // Strike a turn that ran nothing from the history.
    auto g = std::find(st.grants.rbegin(), st.grants.rend(), r.user);
    if (g != st.grants.rend())
      st.grants.erase(std::next(g).base());
  }
  auto statements = t.statements_run + r.statements_run;
  if (r.deferred.empty())
    st.deferred.erase(r.user);
  else
    st.deferred[r.user] = r.deferred;
  log::debug("turn report", {{"user", r.user},
                             {"why", to_string(r.why)},
                             {"jobs", std::to_string(r.jobs)},
                             {"carry", std::to_string(r.carry.size())}});
  switch (r.why) {
    case turn_end::idle:
      st.full.erase(t.host);
      if ((t.wanted && !st.draining) || !r.carry.empty())
        enqueue(self, r.user, statements, std::move(r.carry), std::nullopt, t.host);
      break;
    case turn_end::released:
      st.full.erase(t.host);
      if (!st.draining || !r.carry.empty())
        enqueue(self, r.user, statements, std::move(r.carry), std::nullopt, t.host);
      break;
    case turn_end::busy:
      // Another node holds the user. Without a carry: it serves the user.
      // With one: it may only be looking (it leaves this node's job to it),
      // so the user comes back at the next tick, still first in line. A turn
      // that left an orphan to its live owner comes back at a tick too (not
      // at once on the announcement of its own release: the owner needs a
      // moment to take the lease).
      if ((!r.carry.empty() || !r.deferred.empty()) && !st.draining) {
        enqueue(self, r.user, statements, std::move(r.carry), t.since, t.host, t.inherit);
        if (auto w = st.line.find(r.user); w != st.line.end())
          w->second.not_before = self->clock().now() + tick_period(st.cfg);
      }
      break;
    case turn_end::full:
      // Nothing was taken; a lease to take over is still to take over.
      st.full.insert(t.host);
      if (!st.draining || !r.carry.empty())
        enqueue(self, r.user, statements, std::move(r.carry), t.since, t.host, t.inherit);
      break;
    case turn_end::fenced:
      // The slot expires in Redis; the user waits with what it could not
      // write, and its next turn here takes over this turn's lease if Redis
      // still has it (renewals may have landed late: it would be `busy`).
      if (!st.draining || !r.carry.empty())
        enqueue(self, r.user, statements, std::move(r.carry), t.since, t.host, r.token);
      break;
  }
  maybe_finish_drain(self);
  grant(self);
}

/// The crash sweep (SPEC §7): users with work in progress and no lease join
/// the line. A Redis failure is logged; the next sweep retries.
void sweep(self_ptr self) {
  auto& st = self->state;
  self->request(st.coord, st.cfg.sweep_interval, orphans_atom::value)
    .then(
      [=](const std::vector<std::string>& users) {
        auto& st = self->state;
        if (st.draining)
          return;
        for (const auto& user : users) {
          if (st.line.count(user) > 0 || st.turns.count(user) > 0)
            continue;
          log::info("orphaned work in progress found", {{"user", user}});
          enqueue(self, user, 0, {});
        }
        grant(self);
      },
      [=](caf::error& err) {
        log::warning("orphan sweep failed", {{"error", render(self, err)}});
      });
}

/// The drain's grace is over: stop what still runs.
void stop_running(self_ptr self) {
  auto& st = self->state;
  st.grace_over = true;
  for (auto& [user, t] : st.turns) {
    if (t.stopped || t.fenced)
      continue;
    t.stopped = true;
    t.flags->go_on = false;
    log::info("drain stops user", {{"user", user}});
    self->send(st.canceller, stop_atom::value, user, t.token, stop_reason::drain);
    self->send(t.queue, stop_atom::value, t.token);
  }
}

scheduler_impl::behavior_type scheduler(self_ptr self) {
  self->delayed_send(self, tick_period(self->state.cfg), tick_atom::value);
  self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
  return {
    [=](wants_atom, const std::string& user) {
      auto& st = self->state;
      if (st.draining)
        return;
      if (auto t = st.turns.find(user); t != st.turns.end()) {
        t->second.wanted = true;
        return;
      }
      enqueue(self, user, 0, {});
      grant(self);
    },
    [=](started_atom, const std::string& user, const std::string& token) {
      auto& st = self->state;
      auto t = st.turns.find(user);
      if (t != st.turns.end() && t->second.token == token)
        t->second.started = true;
    },
    [=](ended_atom, turn_report& r) { on_ended(self, r); },
    [=](deadline_atom, uint64_t n) {
      if (n == self->state.deadline_timer.number)
        on_deadline(self);
    },
    [=](slice_atom, uint64_t n) {
      if (n == self->state.slice_timer.number)
        on_slice(self);
    },
    [=](sweep_atom) {
      if (self->state.draining)
        return; // the node is leaving; other nodes sweep (no re-arm)
      sweep(self);
      self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
    },
    [=](tick_atom) {
      auto& st = self->state;
      renew(self);
      st.full.clear(); // probe every full host again, once
      grant(self);
      if (!st.drained)
        self->delayed_send(self, tick_period(st.cfg), tick_atom::value);
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
      // Hand the waiting users over: another node serves them now, not at
      // its next rescan. Users with jobs to write back stay for a settle turn.
      std::vector<std::string> handed;
      for (auto& [user, w] : st.line)
        if (w.carry.empty())
          handed.push_back(user);
      for (auto& user : handed)
        leave_line(self, user);
      if (!handed.empty())
        self->request(st.coord, tick_period(st.cfg) * 5, announce_atom::value, handed)
          .then([](bool) {},
                [=](caf::error& err) {
                  log::warning("announce failed", {{"error", render(self, err)}});
                });
      for (auto& [user, t] : st.turns)
        if (!t.fenced)
          yield_turn(self, t);
      log::info("drain started", {{"running", std::to_string(st.turns.size())},
                                  {"handed_over", std::to_string(handed.size())}});
      if (st.cfg.shutdown_grace.count() == 0)
        stop_running(self);
      else
        self->delayed_send(self, st.cfg.shutdown_grace, grace_atom::value);
      self->delayed_send(self, st.cfg.shutdown_grace + st.cfg.drain_bound, drain_atom::value,
                         tick_atom::value);
      grant(self); // settle-only turns
      maybe_finish_drain(self);
      return rp;
    },
    [=](grace_atom) {
      if (self->state.draining && !self->state.drained)
        stop_running(self);
    },
    [=](drain_atom, tick_atom) { maybe_finish_drain(self, true); },
    [=](stats_atom) {
      auto& st = self->state;
      scheduler_stats s;
      std::vector<std::pair<fair_key, std::string>> order;
      for (auto& [user, w] : st.line)
        order.emplace_back(w.key(), user);
      std::sort(order.begin(), order.end());
      for (auto& x : order)
        s.waiting.push_back(x.second);
      for (auto& [user, t] : st.turns) {
        s.running.push_back(user);
        if (t.started && !t.fenced)
          ++s.leases;
      }
      s.grants.assign(st.grants.begin(), st.grants.end());
      return s;
    },
  };
}

} // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys, const scheduler_settings& cfg,
                                coordination_actor coordination, canceller_actor canceller,
                                std::shared_ptr<pg::cancel_registry> registry,
                                user_queue_factory make_queue) {
  auto init = [=](self_ptr self) {
    self->state.cfg = cfg;
    self->state.coord = coordination;
    self->state.canceller = canceller;
    self->state.registry = registry;
    self->state.make_queue = make_queue;
    return scheduler(self);
  };
  scheduler_impl h = sys.spawn(init);
  return h;
}

} // namespace batchq
