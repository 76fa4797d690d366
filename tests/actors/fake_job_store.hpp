// fake_job_store: an in-memory ports::job_store for deterministic actor tests
// (a FAKE, not the real thing: tests/integration/redis_job_store_test.cpp
// checks the real store against Redis). It keeps job hashes and per-user
// queues, applies writes the way the Lua scripts do (compare-and-set on the
// expected status, owner check, TTL on final writes, head-of-queue requeue),
// records every call, and can be told to fail the fenced calls (dequeue,
// write, requeue, remove_from_wip) with an error such as lease_lost. It also
// keeps work in progress per user as the scripts do: dequeue adds the id
// (front: most recent first), a final write, a requeue, a pending cancel and
// remove_from_wip take it out.
//
// Thread safety: none. Tests run the actors on CAF's test coordinator in the
// test's thread and inspect the fake directly between steps.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "messages/error.hpp"
#include "src/ports/ports.hpp"

namespace batchq::test {

class fake_job_store : public ports::job_store {
public:
  /// One call as the fake saw it.
  struct call {
    /// "dequeue", "write", "requeue", "cancel_pending", "read", "wip_jobs" or
    /// "remove_from_wip".
    std::string op;
    std::string job_id;
    std::string user;
    /// dequeue: the claim; cancel_pending: the fields set.
    field_pairs fields;
    /// write / requeue: the state_write as received.
    state_write w;
    bool final = false;
    int64_t ttl = 0;
  };

  std::vector<call> calls;
  /// batch:jobs:{id}.
  std::map<std::string, field_pairs> jobs;
  /// batch:queue:{user}; front() is the next job.
  std::map<std::string, std::deque<std::string>> queues;
  /// batch:wip:user:{user}; front() is the most recently dequeued.
  std::map<std::string, std::deque<std::string>> wip;
  /// TTL set on a job (by a final write or a pending cancel).
  std::map<std::string, int64_t> ttls;
  /// When set, dequeue/write/requeue/remove_from_wip fail with it (and change nothing).
  std::optional<caf::error> fail_fenced;
  /// Runs at the start of cancel_pending (e.g. a dequeue racing the cancel).
  std::function<void()> before_cancel_pending;

  // -- test helpers -------------------------------------------------------------

  /// Stores `fields` as job `id` and, when `enqueue`, appends it to the user's queue.
  void add_job(const std::string& id, const field_pairs& fields, bool enqueue = true) {
    jobs[id] = fields;
    if (enqueue)
      queues[get(id, "user")].push_back(id);
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

  /// Calls of operation `op`.
  size_t count(const std::string& op) const {
    return static_cast<size_t>(
      std::count_if(calls.begin(), calls.end(), [&](const call& c) { return c.op == op; }));
  }

  // -- ports::job_store ---------------------------------------------------------

  caf::expected<job_ticket> dequeue(const std::string& user, const std::string& lease_token,
                                    const field_pairs& claim) override {
    calls.push_back({"dequeue", {}, user, claim, {}, false, 0});
    if (fail_fenced)
      return *fail_fenced;
    job_ticket t;
    t.user = user;
    t.lease_token = lease_token;
    auto& q = queues[user];
    while (!q.empty()) {
      auto id = q.front();
      q.pop_front();
      if (jobs.count(id) == 0 || get(id, "status") != "pending")
        continue;
      apply(id, claim, {});
      wip[user].push_front(id);
      t.job_id = id;
      t.record = jobs[id];
      break;
    }
    return t;
  }

  caf::expected<void> write(const state_write& w, bool final, int64_t ttl_seconds) override {
    calls.push_back({"write", w.job_id, w.user, {}, w, final, ttl_seconds});
    if (fail_fenced)
      return *fail_fenced;
    if (jobs.count(w.job_id) == 0 || get(w.job_id, "user") != w.user)
      return make_error(ec::job_not_found, "Job with id " + w.job_id + " not found");
    if (!w.from_status.empty() && get(w.job_id, "status") != w.from_status)
      return make_error(ec::invalid_transition, "job status is now " + get(w.job_id, "status"));
    apply(w.job_id, w.set, w.del);
    if (final) {
      ttls[w.job_id] = ttl_seconds;
      leave_wip(w.job_id, w.user);
    }
    return {};
  }

  caf::expected<void> requeue(const state_write& w) override {
    calls.push_back({"requeue", w.job_id, w.user, {}, w, false, 0});
    if (fail_fenced)
      return *fail_fenced;
    if (jobs.count(w.job_id) == 0 || get(w.job_id, "user") != w.user)
      return make_error(ec::job_not_found, "Job with id " + w.job_id + " not found");
    apply(w.job_id, w.set, w.del);
    ttls.erase(w.job_id);
    leave_wip(w.job_id, w.user);
    auto& q = queues[w.user];
    q.erase(std::remove(q.begin(), q.end(), w.job_id), q.end());
    q.push_front(w.job_id);
    return {};
  }

  caf::expected<pending_cancel> cancel_pending(const std::string& job_id, const std::string& user,
                                               const field_pairs& set,
                                               int64_t ttl_seconds) override {
    calls.push_back({"cancel_pending", job_id, user, set, {}, true, ttl_seconds});
    if (before_cancel_pending)
      before_cancel_pending();
    if (jobs.count(job_id) == 0 || get(job_id, "user") != user)
      return make_error(ec::job_not_found, "Job with id " + job_id + " not found");
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
    calls.push_back({"read", job_id, {}, {}, {}, false, 0});
    auto j = jobs.find(job_id);
    return j == jobs.end() ? field_pairs{} : j->second;
  }

  caf::expected<std::vector<std::string>> wip_jobs(const std::string& user) override {
    calls.push_back({"wip_jobs", {}, user, {}, {}, false, 0});
    auto i = wip.find(user);
    if (i == wip.end())
      return std::vector<std::string>{};
    return std::vector<std::string>(i->second.begin(), i->second.end());
  }

  caf::expected<void> remove_from_wip(const std::string& job_id, const std::string& user,
                                      const std::string&) override {
    calls.push_back({"remove_from_wip", job_id, user, {}, {}, false, 0});
    if (fail_fenced)
      return *fail_fenced;
    leave_wip(job_id, user);
    return {};
  }

private:
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
