#include "src/dev/services.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <unistd.h>

#include "messages/error.hpp"
#include "src/dev/net.hpp"
#include "src/redis/client.hpp"

namespace batchq::dev {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int port_attempts = 3;
constexpr auto poll_every = 20ms;

/// The reason to retry on another port: the free port was taken meanwhile.
bool lost_port_race(const std::string& log_path) {
  return log_tail(log_path).find("Address already in use") != std::string::npos;
}

std::string with_log(const std::string& what, const std::string& log_path) {
  auto tail = log_tail(log_path);
  if (tail.empty())
    return what + " (its log " + log_path + " is empty)";
  return what + "; last lines of " + log_path + ":\n" + tail;
}

enum class wait_outcome { ready, exited, timed_out, interrupted };

/// Polls `ready` until it holds, the child exits, the time runs out or the
/// user interrupts.
wait_outcome wait_ready(child_process& proc, const std::function<bool()>& ready,
                        std::chrono::milliseconds timeout, const interrupted_fn& interrupted) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (interrupted && interrupted())
      return wait_outcome::interrupted;
    if (!proc.running())
      return wait_outcome::exited;
    if (ready())
      return wait_outcome::ready;
    if (std::chrono::steady_clock::now() >= deadline)
      return wait_outcome::timed_out;
    std::this_thread::sleep_for(poll_every);
  }
}

/// What one attempt to start a server (`program`: redis-server, postgres)
/// came to, from how waiting for it ended: caf::none when it is ready; an
/// error `code` when it was interrupted or did not get ready in time (both
/// after `stop()`), or when it exited; nullopt when it exited because another
/// process took its free port meanwhile and attempts are left (start it
/// again on another port). `not_ready` says what did not happen in time.
std::optional<caf::error> start_result(wait_outcome outcome, int attempt, ec code,
                                       const std::string& program, child_process& proc,
                                       const std::string& log_path,
                                       const std::string& not_ready,
                                       const std::function<void()>& stop) {
  switch (outcome) {
    case wait_outcome::ready:
      return caf::error{};
    case wait_outcome::interrupted:
      stop();
      return make_error(code, "interrupted while " + program + " started");
    case wait_outcome::timed_out:
      stop();
      return make_error(code, with_log(not_ready, log_path));
    case wait_outcome::exited:
      break;
  }
  if (attempt < port_attempts && lost_port_race(log_path))
    return std::nullopt;
  return make_error(code, with_log(program + " " + child_process::describe(*proc.exit_status())
                                     + " right after it started",
                                   log_path));
}

std::string stop_line(const char* what, pid_t pid, const std::optional<child_process::stop_result>& r,
                      const char* sig_name, std::chrono::milliseconds grace) {
  if (!r)
    return {};
  auto head = std::string{what} + " (pid " + std::to_string(pid) + ")";
  if (r->killed)
    return head + " did not stop within " + std::to_string(grace.count()) + " ms of "
           + sig_name + " and was killed";
  return head + " stopped (" + child_process::describe(r->status) + ")";
}

} // namespace

// -- temp_dir -----------------------------------------------------------------

temp_dir::~temp_dir() {
  remove();
}

caf::error temp_dir::create(const std::optional<os_user>& owner) {
  std::string tmpl = "/tmp/batchq-dev.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return make_error(ec::invalid_config, std::string{"cannot create a directory in /tmp: "}
                                            + std::strerror(errno));
  path_ = tmpl;
  if (owner && ::chown(path_.c_str(), owner->uid, owner->gid) != 0)
    return make_error(ec::invalid_config, "cannot give " + path_ + " to OS user '" + owner->name
                                            + "': " + std::strerror(errno));
  return caf::none;
}

std::string temp_dir::remove() {
  if (path_.empty() || keep_)
    return {};
  std::error_code err;
  fs::remove_all(path_, err);
  auto p = path_;
  path_.clear();
  if (err)
    return "cannot remove " + p + ": " + err.message();
  return {};
}

// -- embedded_redis -----------------------------------------------------------

caf::error embedded_redis::start(const std::string& binary, const std::string& dir,
                                 const service_timeouts& t, const interrupted_fn& interrupted) {
  grace_ = t.stop_grace;
  log_path_ = dir + "/redis.log";
  for (int attempt = 1;; ++attempt) {
    auto port = free_loopback_port();
    if (!port)
      return std::move(port.error());
    port_ = *port;
    spawn_options o;
    o.argv = {binary,           "--port",       std::to_string(port_),
              "--bind",         "127.0.0.1",    "--save",
              "",               "--appendonly", "no",
              "--daemonize",    "no",           "--dir",
              dir,              "--logfile",    ""};
    o.log_path = log_path_;
    o.cwd = dir;
    o.parent_death_signal = SIGTERM;
    if (auto err = proc_.spawn(o))
      return err;
    auto ping = [this] {
      redis::endpoint ep{"127.0.0.1", port_, 0, 200ms, 1000ms};
      redis::client c{ep};
      auto r = c.command({"PING"});
      return r && r->str == "PONG";
    };
    auto result = start_result(wait_ready(proc_, ping, t.ready, interrupted), attempt,
                               ec::redis_unavailable, "redis-server", proc_, log_path_,
                               "redis-server on 127.0.0.1:" + std::to_string(port_)
                                 + " did not answer PING within "
                                 + std::to_string(t.ready.count()) + " ms",
                               [this] { stop(); });
    if (result)
      return *result; // ready, or the error
    // The port was taken meanwhile: again on another one.
  }
}

std::string embedded_redis::stop() {
  auto pid = proc_.pid();
  return stop_line("redis-server", pid, proc_.stop(SIGTERM, grace_), "SIGTERM", grace_);
}

// -- embedded_postgres --------------------------------------------------------

caf::error embedded_postgres::start(const postgres_binaries& bin, const std::string& dir,
                                    const std::optional<os_user>& run_as,
                                    const service_timeouts& t, const interrupted_fn& interrupted) {
  grace_ = t.stop_grace;
  socket_dir_ = dir;
  auto data_dir = dir + "/pg";

  // initdb: a fresh cluster whose superuser `postgres` logs in without a
  // password through the socket only; TCP logins need the role's password.
  auto initdb_log = dir + "/initdb.log";
  {
    spawn_options o;
    o.argv = {bin.initdb,           "-D",       data_dir, "-U", superuser, "--auth-local=trust",
              "--auth-host=scram-sha-256", "-E", "UTF8",   "--locale=C", "--no-sync"};
    o.log_path = initdb_log;
    o.cwd = dir;
    o.run_as = run_as;
    o.parent_death_signal = SIGTERM;
    child_process initdb;
    if (auto err = initdb.spawn(o))
      return err;
    auto outcome = wait_ready(initdb, [] { return false; }, t.initdb, interrupted);
    if (outcome == wait_outcome::interrupted) {
      initdb.stop(SIGTERM, grace_);
      return make_error(ec::pg_connect_failed, "interrupted while initdb ran");
    }
    if (outcome == wait_outcome::timed_out) {
      initdb.stop(SIGTERM, grace_);
      return make_error(ec::pg_connect_failed,
                        with_log("initdb did not finish within "
                                   + std::to_string(t.initdb.count()) + " ms",
                                 initdb_log));
    }
    auto st = initdb.exit_status();
    if (!st || *st != 0)
      return make_error(ec::pg_connect_failed,
                        with_log("initdb " + child_process::describe(st.value_or(255)),
                                 initdb_log));
  }

  log_path_ = dir + "/postgres.log";
  for (int attempt = 1;; ++attempt) {
    auto port = free_loopback_port();
    if (!port)
      return std::move(port.error());
    port_ = *port;
    spawn_options o;
    o.argv = {bin.postgres, "-D", data_dir, "-p", std::to_string(port_), "-k", socket_dir_,
              "-c",         "listen_addresses=127.0.0.1", "-c", "fsync=off"};
    o.log_path = log_path_;
    o.cwd = dir;
    o.run_as = run_as;
    // Fast shutdown when batchq dies: a smart one (SIGTERM) would wait for
    // any psql session the developer left open.
    o.parent_death_signal = SIGINT;
    if (auto err = proc_.spawn(o))
      return err;
    auto port_text = std::to_string(port_);
    auto ping = [&] {
      const char* keys[] = {"host", "port", "user", "dbname", "connect_timeout", nullptr};
      const char* values[] = {socket_dir_.c_str(), port_text.c_str(), superuser, "postgres", "2",
                              nullptr};
      return PQpingParams(keys, values, 0) == PQPING_OK;
    };
    auto result = start_result(wait_ready(proc_, ping, t.ready, interrupted), attempt,
                               ec::pg_connect_failed, "postgres", proc_, log_path_,
                               "postgres on port " + port_text
                                 + " did not accept connections within "
                                 + std::to_string(t.ready.count()) + " ms",
                               [this] { stop(); });
    if (result)
      return *result; // ready, or the error
    // The port was taken meanwhile: again on another one.
  }
}

std::string embedded_postgres::stop() {
  auto pid = proc_.pid();
  return stop_line("postgres", pid, proc_.stop(SIGINT, grace_), "SIGINT", grace_);
}

} // namespace batchq::dev
