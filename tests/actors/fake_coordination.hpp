// fake_coordination: an in-memory FAKE of ports::coordination for the
// deterministic scheduler tests (no Redis). Leases are a user -> token map,
// capacity slots a host -> set of tokens map (no TTLs: nothing expires unless a
// test says so), database hosts a user -> host map ("" when absent).
//
// Knobs a test sets: `foreign` (another node holds the user's lease: acquire
// answers false), `lose(user)` (the lease is gone, as after an expiry: renewals
// answer false), `queue_not_empty` (release_lease_if_idle answers
// false: jobs arrived), `before_release_if_idle` (a hook run first, e.g. to
// enqueue a job at exactly that moment), `down` (every call fails with
// redis_unavailable), `orphans` (users with work in progress: orphaned_users()
// reports those whose lease nobody holds), `orphans_down` (only
// orphaned_users() fails). Counters let tests assert round trips.
//
// Thread safety: none; the test coordinator runs everything on one thread.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>

#include "messages/error.hpp"
#include "src/ports/ports.hpp"

namespace batchq::test {

class fake_coordination : public ports::coordination {
public:
  std::map<std::string, std::string> leases;
  std::map<std::string, std::set<std::string>> slots;
  std::map<std::string, std::string> hosts;
  std::set<std::string> foreign;
  std::set<std::string> queue_not_empty;
  std::function<void(const std::string& user)> before_release_if_idle;
  bool down = false;
  /// Users with work in progress in Redis; orphaned_users() reports those
  /// whose lease nobody holds (neither `leases` nor `foreign`).
  std::set<std::string> orphans;
  /// Only orphaned_users() fails (redis_unavailable).
  bool orphans_down = false;
  int orphaned_users_calls = 0;

  /// Users announced (PUBLISH batch:users), in order.
  std::vector<std::string> announced;
  int acquire_lease_calls = 0;
  int database_host_calls = 0;
  /// The most slots ever held at once per host.
  std::map<std::string, size_t> max_slots;

  /// Takes the user's lease away (as if it expired and another node took it).
  void lose(const std::string& user) { leases.erase(user); }

  size_t slots_held() const {
    size_t n = 0;
    for (auto& kv : slots)
      n += kv.second.size();
    return n;
  }

  caf::expected<bool> acquire_lease(const std::string& user, const std::string& token,
                                    std::chrono::milliseconds) override {
    ++acquire_lease_calls;
    if (down)
      return unavailable();
    if (foreign.count(user) > 0)
      return false;
    auto i = leases.find(user);
    if (i != leases.end() && i->second != token)
      return false;
    leases[user] = token;
    return true;
  }

  caf::expected<bool> renew_lease(const std::string& user, const std::string& token,
                                  std::chrono::milliseconds) override {
    if (down)
      return unavailable();
    auto i = leases.find(user);
    return i != leases.end() && i->second == token;
  }

  caf::expected<void> announce(const std::string& user) override {
    if (down)
      return unavailable();
    announced.push_back(user);
    return {};
  }

  caf::expected<void> release_lease(const std::string& user, const std::string& token) override {
    if (down)
      return unavailable();
    auto i = leases.find(user);
    if (i != leases.end() && i->second == token)
      leases.erase(i);
    return {};
  }

  caf::expected<bool> release_lease_if_idle(const std::string& user,
                                            const std::string& token) override {
    if (down)
      return unavailable();
    if (before_release_if_idle)
      before_release_if_idle(user);
    auto i = leases.find(user);
    if (i == leases.end() || i->second != token)
      return make_error(ec::lease_lost, "lease of user " + user + " is not held by this token");
    if (queue_not_empty.count(user) > 0)
      return false;
    leases.erase(i);
    return true;
  }

  caf::expected<bool> acquire_slot(const std::string& host, int64_t capacity,
                                   const std::string& slot, std::chrono::milliseconds) override {
    if (down)
      return unavailable();
    auto& s = slots[host];
    if (s.count(slot) == 0 && static_cast<int64_t>(s.size()) >= capacity)
      return false;
    s.insert(slot);
    max_slots[host] = std::max(max_slots[host], s.size());
    return true;
  }

  caf::expected<bool> renew_slot(const std::string& host, const std::string& slot,
                                 std::chrono::milliseconds) override {
    if (down)
      return unavailable();
    auto i = slots.find(host);
    return i != slots.end() && i->second.count(slot) > 0;
  }

  caf::expected<void> release_slot(const std::string& host, const std::string& slot) override {
    if (down)
      return unavailable();
    auto i = slots.find(host);
    if (i != slots.end()) {
      i->second.erase(slot);
      if (i->second.empty())
        slots.erase(i);
    }
    return {};
  }

  caf::expected<std::vector<std::string>> orphaned_users() override {
    ++orphaned_users_calls;
    if (down || orphans_down)
      return unavailable();
    std::vector<std::string> out;
    for (const auto& user : orphans)
      if (leases.count(user) == 0 && foreign.count(user) == 0)
        out.push_back(user);
    return out;
  }

  caf::expected<std::string> database_host(const std::string& user) override {
    ++database_host_calls;
    if (down)
      return unavailable();
    auto i = hosts.find(user);
    return i == hosts.end() ? std::string{} : i->second;
  }

private:
  static caf::error unavailable() {
    return make_error(ec::redis_unavailable, "fake Redis is down");
  }
};

} // namespace batchq::test
