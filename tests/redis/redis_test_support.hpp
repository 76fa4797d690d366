// Helpers shared by the src/redis integration tests.
//
// The tests use Redis DB 12 (not batchq's default 5) so that other suites that
// scan the shared sets (batch:indexes:queue, batch:wip:users) on DB 5 never see
// these tests' users; the key layout is the same in every DB. Every test uses
// its own users (unique_name) and deletes its keys; nothing is flushed.
// Each helper object is for one thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "tests/support/test_env.hpp"

namespace batchq::redis::test {

inline constexpr int test_db = 12;

inline endpoint test_endpoint() {
  endpoint ep;
  ep.port = static_cast<uint16_t>(batchq::test::redis_port());
  ep.db = test_db;
  return ep;
}

/// Runs a command that must succeed; records a test failure otherwise.
inline reply must(client& c, const std::vector<std::string>& argv) {
  auto r = c.command(argv);
  EXPECT_TRUE(r) << argv[0] << ": " << message_of(r.error());
  return r ? *r : reply{};
}

/// `*x` when x holds a value, else `fallback` (caf::expected has no value_or).
template <class T, class U>
T value_or(caf::expected<T> x, U&& fallback) {
  return x ? std::move(*x) : T(std::forward<U>(fallback));
}

/// The fields of a pending job as src/job would write them (CARTO's names).
inline field_list pending_job(const std::string& user, const std::string& query = "select 1") {
  return {{"user", user},     {"status", "pending"}, {"query", query},  {"host", "127.0.0.1"},
          {"port", "5432"},   {"dbname", "db_" + user}, {"dbuser", "role_" + user}};
}

/// Owns a user name and deletes that user's keys (and the listed jobs) when
/// the test ends.
struct scoped_user {
  explicit scoped_user(const std::string& prefix = "rt")
    : name(batchq::test::unique_name(prefix)), c(test_endpoint()) {
    // nop
  }

  ~scoped_user() {
    std::vector<std::string> del{"DEL", keys::queue(name), keys::wip_user(name),
                                 keys::lock_user(name), keys::user_jobs(name)};
    for (const auto& id : jobs)
      del.push_back(keys::job(id));
    c.command(del);
    c.command({"SREM", std::string{keys::queue_index}, name});
    c.command({"SREM", std::string{keys::wip_users}, name});
  }

  /// A fresh job id, remembered for clean-up.
  std::string new_job_id() {
    jobs.push_back(random_token());
    return jobs.back();
  }

  std::string name;
  client c;
  std::vector<std::string> jobs;
};

} // namespace batchq::redis::test
