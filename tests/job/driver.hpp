// Test helpers for the job model: builds jobs from request JSON and drives them
// through the progression with scripted statement outcomes (no database), the way
// the job-runner does. Header-only; each test owns its own driver.
#pragma once

#include "src/job/job.hpp"
#include "src/job/parse.hpp"
#include "src/job/progress.hpp"

#include <chrono>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <string>
#include <vector>

namespace batchq::job::test {

/// 2026-11-28T17:36:10.000Z plus `ms` milliseconds.
inline time_point at(int64_t ms) {
  return time_point{std::chrono::seconds{1795887370}} + std::chrono::milliseconds{ms};
}

/// A new pending job from a JSON request body (asserts that it parses).
inline job job_from(const std::string& body, const std::string& id = "job-1") {
  auto req = parse_request(body, "application/json", "");
  EXPECT_TRUE(static_cast<bool>(req)) << (req ? "" : req.error().message);
  db_target db{"db.local", "5432", "cartodb_user_1_db", "cartodb_user_1", std::nullopt};
  return make_job(req ? *req : job_request{}, id, "alice", db, at(0));
}

/// Drives a job with scripted outcomes: statements whose SQL is a key of
/// `failures` fail with that message, all others succeed.
struct driver {
  std::map<std::string, std::string> failures;
  int64_t cap_ms = 60000;
  int64_t clock_ms = 0;
  /// The SQL of every statement begun, in order.
  std::vector<std::string> ran;
  /// Set when the job's status was not `running` while something still remained.
  bool left_running_early = false;

  time_point tick() { return at(clock_ms += 10); }

  /// Begins the next statement; returns it (nullopt when nothing remains).
  std::optional<statement> begin_next(job& j) {
    auto st = next_statement(j, cap_ms);
    if (!st)
      return st;
    auto r = begin(j, *st, tick());
    EXPECT_TRUE(static_cast<bool>(r)) << (r ? "" : r.error().message);
    ran.push_back(st->sql);
    return st;
  }

  /// Finishes a begun statement with its scripted outcome.
  void finish(job& j, const statement& st) {
    auto it = failures.find(st.sql);
    auto o = it == failures.end() ? outcome::success() : outcome::failure(it->second);
    auto r = apply(j, st, o, tick());
    EXPECT_TRUE(static_cast<bool>(r)) << (r ? "" : r.error().message);
    if (next_statement(j, cap_ms) && j.status != status::running)
      left_running_early = true;
  }

  /// Runs statements until nothing remains or `stop_before(st)` is true for the
  /// statement just begun (which is then left running and returned).
  std::optional<statement> run(job& j, std::function<bool(const statement&)> stop_before = {}) {
    for (int guard = 0; guard < 10000; ++guard) {
      auto st = begin_next(j);
      if (!st)
        return std::nullopt;
      if (stop_before && stop_before(*st))
        return st;
      finish(j, *st);
    }
    ADD_FAILURE() << "job never finished";
    return std::nullopt;
  }
};

/// Stops when the statement's SQL equals `sql`.
inline std::function<bool(const statement&)> when_running(std::string sql) {
  return [sql](const statement& st) { return st.sql == sql; };
}

} // namespace batchq::job::test
