// Process-level harness of tests/client/: a real `batchq serve` node (HTTP API
// + worker) on the test Redis and PostgreSQL of scripts/test, and the client
// commands run as the real binary (BATCHQ_BINARY) against it.
//
//  - `api_node`: `batchq serve --http.port=<free> --redis.db=11
//    --cluster.node-id=<unique>`, output captured to a file whose last lines
//    are shown when a test fails; ready once GET /ready answers 200; stopped
//    with SIGTERM (must exit 0), SIGKILLed if it outlives the test.
//  - `run_cli`: runs `batchq <args>` to completion with its own environment
//    (every BATCHQ_* variable of the test's environment removed, then the
//    given ones set) and optional stdin text; returns exit code, stdout and
//    stderr apart (so a test can tell what goes where).
//  - `account`: a user created with `batchq user add` (its key read from
//    stdout); at destruction the user's records in DB 5 and every key of DB
//    11 naming the user or one of its jobs are deleted.
//
// Child processes, waits, temporary files and free ports come from
// tests/support/process.hpp.
//
// The tests of this executable share Redis DB 11 (no other suite uses it) and
// ctest runs them one at a time (RESOURCE_LOCK in CMakeLists.txt): a node
// serves every user of its DB, so two tests' nodes would take each other's jobs.
//
// Thread safety: none; one test thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "messages/error.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/users.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_env.hpp"

namespace batchq::test::client {

using namespace std::chrono_literals;
using nlohmann::json;

/// Redis DB of the job keys of every node started here.
inline constexpr int batch_db = 11;

/// The flags pointing a batchq command at the test Redis.
inline std::vector<std::string> redis_flags() {
  return {"--redis.host=127.0.0.1", "--redis.port=" + std::to_string(redis_port())};
}

using env_vars = std::map<std::string, std::string>;

struct cli_result {
  std::optional<int> exit_code; // nullopt: still running at the timeout (then killed)
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

inline std::ostream& operator<<(std::ostream& os, const cli_result& r) {
  return os << "exit " << (r.exit_code ? std::to_string(*r.exit_code) : "none (timed out)")
            << "\n--- stdout:\n" << r.out << "--- stderr:\n" << r.err << "---";
}

/// Runs `batchq <args...>` to completion (bounded by `timeout`), stdout and
/// stderr to files, stdin from `stdin_text` (or /dev/null), environment =
/// the test's without BATCHQ_* plus `env`.
inline cli_result run_cli(const std::vector<std::string>& args, const env_vars& env = {},
                          const std::optional<std::string>& stdin_text = std::nullopt,
                          std::chrono::milliseconds timeout = 60s) {
  std::vector<std::string> argv{batchq_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  run_options opts;
  opts.stdin_text = stdin_text;
  opts.env = environment_without_batchq(env, /*keep_test_servers=*/true);
  opts.timeout = timeout;
  auto r = run_to_end(argv, opts);
  return {r.exit_code, std::move(r.out), std::move(r.err), r.elapsed};
}

/// `batchq serve` (API + worker) on the test servers, Redis DB batch_db.
class api_node {
public:
  explicit api_node(std::vector<std::string> extra = {})
    : id_(unique_name("client_node")), port_(free_port()) {
    std::vector<std::string> argv{batchq_binary(),
                                  "serve",
                                  "--http.port=" + std::to_string(port_),
                                  "--redis.host=127.0.0.1",
                                  "--redis.port=" + std::to_string(redis_port()),
                                  "--redis.db=" + std::to_string(batch_db),
                                  "--postgres.port=" + std::to_string(pg_port()),
                                  "--cluster.node-id=" + id_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    started_ = proc_.start(argv, temp_path("batchq_serve"));
  }

  /// SIGTERM; the node must drain and exit 0 within 30 s (see stop_serve_node).
  ~api_node() { stop_serve_node(proc_, id_); }

  /// Waits until GET /ready answers 200 (Redis reachable, worker subscribed).
  bool wait_ready(std::chrono::milliseconds timeout = 30s) {
    if (!started_)
      return false;
    httplib::Client http{"127.0.0.1", port_};
    http.set_connection_timeout(1s);
    http.set_read_timeout(2s);
    return wait_until(
      [&] {
        if (!proc_.running())
          return true;
        auto r = http.Get("/ready");
        return r && r->status == 200;
      },
      timeout, 50ms)
      && proc_.running();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

private:
  std::string id_;
  int port_;
  child proc_;
  bool started_ = false;
};

/// The `batchq user add` arguments of a user whose jobs run in the test
/// cluster's `postgres` database as the trust-auth superuser.
inline std::vector<std::string> user_add_args(const std::string& name) {
  std::vector<std::string> a{"user",
                             "add",
                             name,
                             "--database-name",
                             "postgres",
                             "--database-role",
                             "postgres",
                             "--database-host",
                             "127.0.0.1",
                             "--database-port",
                             std::to_string(pg_port())};
  for (auto& f : redis_flags())
    a.push_back(f);
  return a;
}

/// A user created with `batchq user add`, and everything of it removed at
/// destruction.
class account {
public:
  explicit account(const std::string& prefix = "client")
    : name_(unique_name(prefix)),
      meta_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), redis::metadata_db}),
      batch_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), batch_db}) {
    auto r = run_cli(user_add_args(name_));
    EXPECT_EQ(r.exit_code, 0) << r;
    key_ = r.out;
    while (!key_.empty() && (key_.back() == '\n' || key_.back() == '\r'))
      key_.pop_back();
    EXPECT_FALSE(key_.empty()) << r;
  }

  account(const account&) = delete;
  account& operator=(const account&) = delete;

  ~account() {
    redis::remove_user(meta_, name_);
    for (const auto& id : jobs_)
      batch_.command({"DEL", redis::keys::job(id)});
    // Whatever else the API keeps about the user (queue, indexes, idempotency
    // keys) has the unique user name in its key.
    if (auto found = redis::scan_keys(batch_, "*" + redis::keys::escape_glob(name_) + "*"))
      for (const auto& k : *found)
        batch_.command({"DEL", k});
    for (auto set : {redis::keys::queue_index, redis::keys::wip_users})
      batch_.command({"SREM", std::string{set}, name_});
  }

  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }

  /// The environment that points the client commands at `node` as this user.
  env_vars env(const api_node& node) const {
    return {{"BATCHQ_URL", node.url()}, {"BATCHQ_USER", name_}, {"BATCHQ_API_KEY", key_}};
  }

  /// Remembers a job id for the cleanup.
  void track(const std::string& id) { jobs_.push_back(id); }

private:
  std::string name_;
  std::string key_;
  redis::client meta_;
  redis::client batch_;
  std::vector<std::string> jobs_;
};

/// The first word of the first line (the job id `batchq submit` prints).
inline std::string first_word(const std::string& text) {
  auto end = text.find_first_of(" \n");
  return text.substr(0, end);
}

/// Runs `batchq get <id> --json` until `pred(job)` holds (or the time runs
/// out); the last job seen.
inline json poll_job(const env_vars& env, const std::string& id,
                     const std::function<bool(const json&)>& pred,
                     std::chrono::milliseconds timeout = 20s) {
  json last;
  wait_until(
    [&] {
      auto r = run_cli({"get", id, "--json"}, env);
      if (r.exit_code != 0)
        return false;
      last = json::parse(r.out, nullptr, false);
      return !last.is_discarded() && pred(last);
    },
    timeout, 50ms);
  return last;
}

inline std::function<bool(const json&)> status_is(const std::string& s) {
  return [s](const json& j) { return j.value("status", "") == s; };
}

} // namespace batchq::test::client
