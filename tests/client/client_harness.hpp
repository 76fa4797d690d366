// Process-level harness of tests/client/: a real `batchq serve` node (HTTP API
// + worker) on the test Redis and PostgreSQL of scripts/test, and the client
// commands run as the real binary (BATCHQ_BINARY) against it.
//
//  - `api_node`: `batchq serve --http.port=<free> --redis.db=11
//    --cluster.node-id=<unique>`, output captured to a file shown when a test
//    fails; ready once GET /ready answers 200; stopped with SIGTERM (must
//    exit 0), SIGKILLed if it outlives the test.
//  - `run_cli`: runs `batchq <args>` to completion with its own environment
//    (every BATCHQ_* variable of the test's environment removed, then the
//    given ones set) and optional stdin text; returns exit code, stdout and
//    stderr apart (so a test can tell what goes where).
//  - `account`: a user created with `batchq user add` (its key read from
//    stdout); at destruction the user's records in DB 5 and every key of DB
//    11 naming the user or one of its jobs are deleted.
//
// The tests of this executable share Redis DB 11 (no other suite uses it) and
// ctest runs them one at a time (RESOURCE_LOCK in CMakeLists.txt): a node
// serves every user of its DB, so two tests' nodes would take each other's jobs.
//
// Thread safety: none; one test thread.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "messages/error.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/users.hpp"
#include "tests/support/test_env.hpp"

extern char** environ;

namespace batchq::test::client {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
using nlohmann::json;

/// Redis DB of the job keys of every node started here.
inline constexpr int batch_db = 11;

inline std::string batchq_binary() { return BATCHQ_BINARY; }

/// Polls `pred` every `every` until it holds or `timeout` runs out.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds every = 20ms) {
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(every);
  }
}

inline std::string read_text(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string temp_path(const std::string& stem) {
  return "/tmp/" + unique_name(stem) + ".txt";
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port: " << std::strerror(errno);
    if (fd >= 0)
      ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

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
  cli_result res;
  auto out_path = temp_path("batchq_out");
  auto err_path = temp_path("batchq_err");
  std::string in_path = "/dev/null";
  if (stdin_text) {
    in_path = temp_path("batchq_in");
    std::ofstream{in_path} << *stdin_text;
  }
  std::vector<std::string> argv_s{batchq_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "BATCHQ_", 7) != 0 || std::strncmp(*e, "BATCHQ_TEST_", 12) == 0)
      env_s.emplace_back(*e);
  for (const auto& [k, v] : env)
    env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  auto t0 = clock::now();
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << batchq_binary() << ": " << std::strerror(rc);
    return res;
  }
  wait_until(
    [&] {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid)
        res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return res.exit_code.has_value();
    },
    timeout, 10ms);
  if (!res.exit_code) {
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
  res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
  res.out = read_text(out_path);
  res.err = read_text(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  if (stdin_text)
    std::remove(in_path.c_str());
  return res;
}

/// `batchq serve` (API + worker) on the test servers, Redis DB batch_db.
class api_node {
public:
  explicit api_node(std::vector<std::string> extra = {})
    : id_(unique_name("client_node")), port_(free_port()), log_path_(temp_path("batchq_serve")) {
    std::vector<std::string> argv_s{batchq_binary(),
                                    "serve",
                                    "--http.port=" + std::to_string(port_),
                                    "--redis.host=127.0.0.1",
                                    "--redis.port=" + std::to_string(redis_port()),
                                    "--redis.db=" + std::to_string(batch_db),
                                    "--postgres.port=" + std::to_string(pg_port()),
                                    "--cluster.node-id=" + id_};
    argv_s.insert(argv_s.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : argv_s)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }

  api_node(const api_node&) = delete;
  api_node& operator=(const api_node&) = delete;

  /// SIGTERM; the node must drain and exit 0 within 30 s.
  ~api_node() {
    if (running()) {
      ::kill(pid_, SIGTERM);
      if (!wait_exit(30s)) {
        ADD_FAILURE() << "node " << id_ << " did not exit within 30 s of SIGTERM";
        ::kill(pid_, SIGKILL);
        wait_exit(5s);
      } else if (*exit_code_ != 0) {
        ADD_FAILURE() << "node " << id_ << " exited with status " << *exit_code_
                      << " after SIGTERM";
      }
    }
    if (::testing::Test::HasFailure())
      std::cerr << "---- batchq serve " << id_ << " (" << log_path_ << "):\n"
                << read_text(log_path_) << "\n---- end of " << id_ << "\n";
    else
      std::remove(log_path_.c_str());
  }

  /// Waits until GET /ready answers 200 (Redis reachable, worker subscribed).
  bool wait_ready(std::chrono::milliseconds timeout = 30s) {
    if (pid_ <= 0)
      return false;
    httplib::Client http{"127.0.0.1", port_};
    http.set_connection_timeout(1s);
    http.set_read_timeout(2s);
    return wait_until(
      [&] {
        if (!running())
          return true;
        auto r = http.Get("/ready");
        return r && r->status == 200;
      },
      timeout, 50ms)
      && running();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  bool running() {
    if (pid_ <= 0 || exit_code_)
      return false;
    return !wait_exit(0ms);
  }

private:
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (exit_code_ || pid_ <= 0)
      return exit_code_;
    wait_until(
      [&] {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_)
          exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return exit_code_.has_value();
      },
      timeout, 10ms);
    return exit_code_;
  }

  std::string id_;
  int port_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
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
    std::string cursor = "0";
    do {
      auto r = batch_.command({"SCAN", cursor, "MATCH", "*" + name_ + "*", "COUNT", "1000"});
      if (!r || !r->is_array() || r->elements.size() != 2)
        break;
      cursor = r->elements[0].str;
      for (const auto& k : r->elements[1].elements)
        batch_.command({"DEL", k.str});
    } while (cursor != "0");
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
