// fake_job_store: an in-memory ports::job_store for deterministic actor tests
// (a FAKE, not the real thing: tests/redis/turns_test.cpp and
// tests/integration/redis_job_store_test.cpp check the real script against
// Redis). It keeps job hashes, per-user queues, work in progress, user leases
// and capacity slots, and applies a turn step the way turn.lua does:
// compare-and-set on status and claim, a retry of a landed write answers
// `applied`, `next` takes lease + slot, settles work in progress (own claim
// again, orphans under another claim, stale entries dropped) and claims the
// next pending job, `release` gives lease and slot back. Nothing expires by
// itself: tests take a lease away with `steal` or `expire`.
//
// Fault injection (the "fault-injecting port" of the actor tests):
//  - `fail_next`: the next N turn calls fail with the given error and change
//    nothing (Redis unreachable before the script ran);
//  - `lose_reply_next`: the next N turn calls DO their work and then fail
//    with redis_unavailable (the connection dropped after Redis ran the
//    script: the reply was lost);
//  - `before_turn`: runs at the start of every turn call (e.g. to take the
//    lease away at exactly that moment).
// Every call is recorded.
//
// Thread safety: none. Tests run the actors on CAF's test coordinator in the
// test's thread and inspect the fake directly between steps.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "messages/error.hpp"
#include "src/ports/ports.hpp"

namespace batchq::test {

class fake_job_store : public ports::job_store {
public:
  /// One call as the fake saw it.
  struct call {
    /// "turn", "cancel_pending" or "read".
    std::string op;
    std::string user;
    turn_request request;
    /// The job id of a cancel_pending/read.
    std::string job_id;
    /// What the turn call answered (when it did).
    std::optional<turn_answer> answer;
  };

  std::vector<call> calls;
  /// batch:jobs:{id}.
  std::map<std::string, field_pairs> jobs;
  /// batch:queue:{user}; front() is the next job.
  std::map<std::string, std::deque<std::string>> queues;
  /// batch:wip:user:{user}; front() is the most recently claimed.
  std::map<std::string, std::deque<std::string>> wip;
  /// batch:locks:user:{user}: the holder's token.
  std::map<std::string, std::string> leases;
  /// batch:capacity:{host}: slot tokens.
  std::map<std::string, std::set<std::string>> slots;
  /// batchq:cancel_requested:{id}: running jobs a user asked to cancel.
  std::set<std::string> cancel_marks;
  /// TTL set on a job (by a final write or a pending cancel).
  std::map<std::string, int64_t> ttls;
  /// Users published (PUBLISH batch:users), in order.
  std::vector<std::string> published;
  /// The most slots ever held at once per host.
  std::map<std::string, size_t> max_slots;
  /// Nodes registered (batch:nodes:{id}): an orphan of one is answered with
  /// owner_alive.
  std::set<std::string> live_nodes;

  int fail_next = 0;
  caf::error fail_with = make_error(ec::redis_unavailable, "fake Redis is down");
  int lose_reply_next = 0;
  std::function<void(const turn_request&)> before_turn;
  std::function<void()> before_cancel_pending;

  // -- test helpers -------------------------------------------------------------

  /// Stores `fields` as job `id` and, when `enqueue`, appends it to the user's queue.
  void add_job(const std::string& id, const field_pairs& fields, bool enqueue = true) {
    jobs[id] = fields;
    if (enqueue)
      queues[get(id, "user")].push_back(id);
  }

  /// Sets a field of a stored job (a test's edit of the stored state).
  void set(const std::string& id, const std::string& field, const std::string& value) {
    for (auto& [k, v] : jobs[id])
      if (k == field) {
        v = value;
        return;
      }
    jobs[id].emplace_back(field, value);
  }

  /// A field of a stored job ("" when absent).
  std::string get(const std::string& id, const std::string& field) const {
    auto j = jobs.find(id);
    if (j == jobs.end())
      return {};
    for (const auto& [k, v] : j->second)
      if (k == field)
        return v;
    return {};
  }

  bool has(const std::string& id, const std::string& field) const {
    auto j = jobs.find(id);
    if (j == jobs.end())
      return false;
    return std::any_of(j->second.begin(), j->second.end(),
                       [&](const auto& kv) { return kv.first == field; });
  }

  /// Turn calls whose part is `p`, or that write a job of kind `k`.
  size_t turns(turn_part p) const {
    return static_cast<size_t>(std::count_if(calls.begin(), calls.end(), [&](const call& c) {
      return c.op == "turn" && c.request.part == p;
    }));
  }
  size_t writes(write_kind k) const {
    return static_cast<size_t>(std::count_if(calls.begin(), calls.end(), [&](const call& c) {
      return c.op == "turn" && !c.request.write.empty() && c.request.write.front().kind == k;
    }));
  }

  /// The lease of `user` expired (nobody holds it now).
  void expire(const std::string& user) { leases.erase(user); }

  /// Another node took the lease of `user`.
  void steal(const std::string& user, const std::string& token = "other-node") {
    leases[user] = token;
  }

  size_t slots_held() const {
    size_t n = 0;
    for (auto& kv : slots)
      n += kv.second.size();
    return n;
  }

  // -- ports::job_store ---------------------------------------------------------

  caf::expected<turn_answer> turn(const turn_request& r, const field_pairs& claim,
                                  int64_t final_ttl_seconds) override {
    calls.push_back({"turn", r.user, r, {}, std::nullopt});
    if (before_turn)
      before_turn(r);
    if (fail_next > 0) {
      --fail_next;
      return fail_with;
    }
    auto a = apply_turn(r, claim, final_ttl_seconds);
    if (!a)
      return a;
    calls.back().answer = *a;
    if (lose_reply_next > 0) {
      --lose_reply_next;
      return make_error(ec::redis_unavailable, "fake Redis dropped the connection");
    }
    return a;
  }

  caf::expected<pending_cancel> cancel_pending(const std::string& job_id, const std::string& user,
                                               const field_pairs& set,
                                               int64_t ttl_seconds) override {
    calls.push_back({"cancel_pending", user, {}, job_id, std::nullopt});
    if (before_cancel_pending)
      before_cancel_pending();
    if (jobs.count(job_id) == 0 || get(job_id, "user") != user)
      return make_error(ec::job_not_found, "Job with id " + job_id + " not found");
    if (get(job_id, "status") == "running")
      cancel_marks.insert(job_id);
    if (get(job_id, "status") != "pending")
      return pending_cancel{false, get(job_id, "status"),
                            get(job_id, "status") == "running" ? get(job_id, "node") : ""};
    apply(job_id, set, {});
    auto& q = queues[user];
    q.erase(std::remove(q.begin(), q.end(), job_id), q.end());
    leave_wip(job_id, user);
    ttls[job_id] = ttl_seconds;
    return pending_cancel{true, {}, {}};
  }

  caf::expected<field_pairs> read(const std::string& job_id) override {
    calls.push_back({"read", {}, {}, job_id, std::nullopt});
    auto j = jobs.find(job_id);
    return j == jobs.end() ? field_pairs{} : j->second;
  }

  caf::expected<bool> cancel_mark(const std::string& job_id, bool set) override {
    calls.push_back({set ? "mark_cancel" : "read_mark", {}, {}, job_id, std::nullopt});
    if (set)
      cancel_marks.insert(job_id);
    return cancel_marks.count(job_id) == 1;
  }

private:
  static bool final_status(const std::string& s) {
    return s == "done" || s == "failed" || s == "cancelled" || s == "unknown";
  }

  bool holds(const turn_request& r) const {
    auto i = leases.find(r.user);
    return i != leases.end() && i->second == r.token;
  }

  void give_back(const turn_request& r) {
    if (holds(r))
      leases.erase(r.user);
    auto s = slots.find(r.host);
    if (s != slots.end()) {
      s->second.erase(r.slot);
      if (s->second.empty())
        slots.erase(s);
    }
  }

  caf::expected<turn_answer> apply_turn(const turn_request& r, const field_pairs& claim,
                                        int64_t ttl) {
    turn_answer a;
    // 1. the write
    if (!r.write.empty()) {
      const auto& w = r.write.front();
      if (jobs.count(w.job_id) == 0 || get(w.job_id, "user") != r.user)
        return make_error(ec::job_not_found, "Job with id " + w.job_id + " not found");
      auto cur = get(w.job_id, "status");
      auto cur_claim = get(w.job_id, "claim");
      if (w.to_status != w.expected_status && cur == w.to_status && cur_claim == r.token) {
        a.applied = true;
      } else {
        if (!holds(r))
          return make_error(ec::lease_lost, "lease of user " + r.user + " is not held by this token");
        if (cur != w.expected_status || cur_claim != w.expected_claim)
          return make_error(ec::invalid_transition, "job status is now " + cur);
        apply(w.job_id, w.set, w.del);
        apply(w.job_id, {{"claim", r.token}}, {});
        if (w.kind == write_kind::final) {
          ttls[w.job_id] = ttl;
          leave_wip(w.job_id, r.user);
        } else if (w.kind == write_kind::requeue) {
          ttls.erase(w.job_id);
          leave_wip(w.job_id, r.user);
          auto& q = queues[r.user];
          q.erase(std::remove(q.begin(), q.end(), w.job_id), q.end());
          q.push_front(w.job_id);
        }
      }
    }
    // 2. the turn
    if (r.part == turn_part::release) {
      give_back(r);
      a.what = turn_outcome::released;
      a.queue_length = static_cast<int64_t>(queues[r.user].size());
      if (a.queue_length > 0)
        published.push_back(r.user);
      return a;
    }
    if (r.part == turn_part::none) {
      a.what = turn_outcome::none;
      return a;
    }
    auto& q = queues[r.user];
    if (!r.inherit.empty() && leases.count(r.user) > 0 && leases[r.user] == r.inherit)
      leases.erase(r.user); // this node's own fenced, ended turn: taken over
    bool held = holds(r);
    if (!held) {
      if (q.empty() && wip[r.user].empty()) {
        wip.erase(r.user);
        a.what = turn_outcome::empty;
        return a;
      }
      if (leases.count(r.user) > 0) {
        a.what = turn_outcome::busy;
        return a;
      }
    }
    auto& s = slots[r.host];
    if (s.count(r.slot) == 0 && static_cast<int64_t>(s.size()) >= r.capacity) {
      if (held)
        leases.erase(r.user);
      if (s.empty())
        slots.erase(r.host);
      a.what = turn_outcome::full;
      return a;
    }
    leases[r.user] = r.token;
    s.insert(r.slot);
    max_slots[r.host] = std::max(max_slots[r.host], s.size());
    std::vector<std::string> in_progress(wip[r.user].rbegin(), wip[r.user].rend()); // oldest first
    for (const auto& id : in_progress) {
      auto st = get(id, "status");
      if (jobs.count(id) == 0 || final_status(st) || get(id, "user") != r.user) {
        leave_wip(id, r.user);
      } else if (st == "pending") {
        leave_wip(id, r.user);
        q.erase(std::remove(q.begin(), q.end(), id), q.end());
        q.push_front(id);
      } else if (st == "running" && get(id, "claim") == r.token) {
        if (a.jobs.empty()) {
          a.what = turn_outcome::job;
          a.jobs.push_back(job_ticket{id, r.user, r.token, jobs[id]});
          return a;
        }
      } else {
        a.jobs.push_back(
          job_ticket{id, r.user, r.token, jobs[id], live_nodes.count(get(id, "node")) > 0});
      }
    }
    if (wip.count(r.user) > 0 && wip[r.user].empty())
      wip.erase(r.user);
    if (!a.jobs.empty()) {
      a.what = turn_outcome::recover;
      return a;
    }
    while (!q.empty()) {
      auto id = q.front();
      q.pop_front();
      if (jobs.count(id) == 0 || get(id, "status") != "pending")
        continue;
      apply(id, claim, {});
      start_simple_step(id, claim);
      apply(id, {{"claim", r.token}}, {});
      wip[r.user].push_front(id);
      a.what = turn_outcome::job;
      a.jobs.push_back(job_ticket{id, r.user, r.token, jobs[id]});
      return a;
    }
    give_back(r);
    a.what = turn_outcome::empty;
    return a;
  }

  /// turn.lua's start_simple_step: a simple job's claim starts its step.
  void start_simple_step(const std::string& id, const field_pairs& claim) {
    auto shape = get(id, "shape");
    if (!shape.empty() && shape != "simple")
      return;
    if (shape.empty()) {
      auto q = get(id, "query");
      auto i = q.find_first_not_of(" \t\r\n");
      if (q.empty() || (i != std::string::npos && (q[i] == '[' || q[i] == '{')))
        return;
    }
    for (const auto& [k, v] : claim)
      if (k == "updated_at") {
        apply(id, {{"step_status", "running"}, {"step_started_at", v}}, {"step_ended_at"});
        return;
      }
  }

  void leave_wip(const std::string& id, const std::string& user) {
    auto i = wip.find(user);
    if (i == wip.end())
      return;
    i->second.erase(std::remove(i->second.begin(), i->second.end(), id), i->second.end());
    if (i->second.empty())
      wip.erase(i);
  }

  void apply(const std::string& id, const field_pairs& set, const std::vector<std::string>& del) {
    auto& rec = jobs[id];
    rec.erase(std::remove_if(rec.begin(), rec.end(),
                             [&](const auto& kv) {
                               return std::find(del.begin(), del.end(), kv.first) != del.end();
                             }),
              rec.end());
    for (const auto& [k, v] : set) {
      auto it = std::find_if(rec.begin(), rec.end(), [&](const auto& kv) { return kv.first == k; });
      if (it != rec.end())
        it->second = v;
      else
        rec.emplace_back(k, v);
    }
  }
};

} // namespace batchq::test
