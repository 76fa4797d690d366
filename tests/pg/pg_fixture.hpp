// Helpers for the tests/pg integration tests: an admin libpqxx connection to
// the test cluster (superuser, trust auth) and small polling utilities.
// Each test uses its own unique_name() objects, so test processes may run in
// parallel on the same cluster.
#pragma once

#include <stdexcept>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "src/pg/pool.hpp"
#include "tests/support/test_env.hpp"

namespace batchq::pg::test {

using namespace std::chrono_literals;

inline pool_key superuser_key() {
  return pool_key{"127.0.0.1", static_cast<uint16_t>(batchq::test::pg_port()), "postgres",
                  "postgres"};
}

/// Runs `sql` on a fresh superuser connection and returns the first field of
/// the first row as text ("" when there is none).
inline std::string admin_value(const std::string& sql) {
  pqxx::connection conn{batchq::test::pg_conninfo()};
  pqxx::nontransaction tx{conn};
  auto r = tx.exec(sql);
  if (r.empty() || r[0].empty() || r[0][0].is_null())
    return {};
  return r[0][0].c_str();
}

inline void admin_exec(const std::string& sql) {
  pqxx::connection conn{batchq::test::pg_conninfo()};
  pqxx::nontransaction tx{conn};
  tx.exec(sql);
}

/// Polls `pred` every 5 ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

/// True while backend `pid` still appears in pg_stat_activity.
inline bool backend_exists(int pid) {
  return admin_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid))
         != "0";
}

/// The state of backend `pid` ("active", "idle", ...; "" if gone).
inline std::string backend_state(int pid) {
  return admin_value("SELECT state FROM pg_stat_activity WHERE pid = " + std::to_string(pid));
}

inline int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                               - t0)
    .count();
}

/// A fixture with its own pool and a helper that borrows a superuser
/// connection (a failure to connect ends the test with the reason).
struct superuser_pool_test : ::testing::Test {
  pool p;
  pooled_connection conn() {
    auto c = p.acquire(superuser_key(), "");
    if (!c)
      throw std::runtime_error("cannot borrow a connection: " + batchq::message_of(c.error()));
    return std::move(*c);
  }
};

} // namespace batchq::pg::test
