// The servers `batchq dev` embeds (SPEC §9, docs/dev-mode.md), each a child
// process of batchq on a free loopback port, with its files in one private
// temporary directory:
//
//   <dir>/redis.log      redis-server --port P --bind 127.0.0.1 --save ''
//                        --appendonly no --dir <dir> (foreground)
//   <dir>/initdb.log     initdb -D <dir>/pg -U postgres --auth-local=trust
//                        --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync
//   <dir>/pg/            the cluster's data directory
//   <dir>/postgres.log   postgres -D <dir>/pg -p P -k <dir>
//                        -c listen_addresses=127.0.0.1 -c fsync=off
//   <dir>/.s.PGSQL.P     its Unix socket (the superuser connects there; TCP
//                        needs a password)
//
// As root, the directory belongs to an unprivileged OS user (process.hpp's
// unprivileged_user()) and initdb/postgres run as that user.
//
// start() waits, with a bound, until the server answers (Redis PING, a
// PostgreSQL connection); a server that exits or does not answer in time
// is an error whose message ends with the tail of its log. stop() (also
// run by the destructor) ends a server politely, then with SIGKILL after a
// bound: SIGTERM for Redis, SIGINT (fast shutdown) for PostgreSQL.
//
// `interrupted` callbacks let the caller abort a start (Ctrl-C while
// initdb runs): when one returns true, start() stops what it began and
// returns an error.
//
// Thread safety: each object is used by one thread (the main thread: see
// process.hpp on the parent-death signal).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <caf/error.hpp>

#include "src/dev/binaries.hpp"
#include "src/dev/process.hpp"

namespace batchq::dev {

/// Returns true when the start should be abandoned (the user pressed Ctrl-C).
using interrupted_fn = std::function<bool()>;

/// A directory from mkdtemp(`/tmp/batchq-dev.XXXXXX`), removed with its
/// content by remove() or the destructor unless keep() was called.
class temp_dir {
public:
  temp_dir() = default;
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// Creates the directory (mode 0700); as root with `owner`, chowns it to
  /// that user. Errors: ec::invalid_config with the reason.
  caf::error create(const std::optional<os_user>& owner);

  const std::string& path() const noexcept { return path_; }

  /// Leave the directory in place at destruction (`batchq dev --keep`).
  void keep() noexcept { keep_ = true; }

  /// Removes the directory now (unless kept). Returns a message when some of
  /// it could not be removed, else "".
  std::string remove();

private:
  std::string path_;
  bool keep_ = false;
};

/// The bounds of dev mode's waits.
struct service_timeouts {
  /// Until a started server answers.
  std::chrono::milliseconds ready{30000};
  /// initdb's whole run.
  std::chrono::milliseconds initdb{120000};
  /// From the polite stop signal to SIGKILL.
  std::chrono::milliseconds stop_grace{10000};
};

class embedded_redis {
public:
  embedded_redis() = default;
  ~embedded_redis() { stop(); }
  embedded_redis(const embedded_redis&) = delete;
  embedded_redis& operator=(const embedded_redis&) = delete;

  /// Starts `binary` on a free loopback port with its files in `dir` and
  /// waits until it answers PING. Errors: ec::redis_unavailable (it exited,
  /// or did not answer in time; the message has its log tail), or whatever
  /// spawn() reports.
  caf::error start(const std::string& binary, const std::string& dir,
                   const service_timeouts& t, const interrupted_fn& interrupted);

  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return proc_.pid(); }
  std::string log_path() const { return log_path_; }

  /// SIGTERM, then SIGKILL after the grace. Returns a line describing how it
  /// ended, or "" when it was not running.
  std::string stop();

private:
  child_process proc_;
  uint16_t port_ = 0;
  std::string log_path_;
  std::chrono::milliseconds grace_{10000};
};

class embedded_postgres {
public:
  embedded_postgres() = default;
  ~embedded_postgres() { stop(); }
  embedded_postgres(const embedded_postgres&) = delete;
  embedded_postgres& operator=(const embedded_postgres&) = delete;

  /// Runs initdb into `dir`/pg, then starts postgres on a free loopback
  /// port (as `run_as` when set) and waits until the superuser `postgres`
  /// can connect through the socket in `dir`. Errors: ec::pg_connect_failed
  /// with the log tail of initdb or postgres, or whatever spawn() reports.
  caf::error start(const postgres_binaries& bin, const std::string& dir,
                   const std::optional<os_user>& run_as, const service_timeouts& t,
                   const interrupted_fn& interrupted);

  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return proc_.pid(); }
  /// The directory of the Unix socket (the libpq `host` for the superuser).
  const std::string& socket_dir() const noexcept { return socket_dir_; }
  std::string log_path() const { return log_path_; }

  /// The superuser's name (trust authentication through the socket).
  static constexpr const char* superuser = "postgres";

  /// SIGINT (fast shutdown: disconnects clients, no waiting for them), then
  /// SIGKILL after the grace. Returns a line as embedded_redis::stop().
  std::string stop();

private:
  child_process proc_;
  uint16_t port_ = 0;
  std::string socket_dir_;
  std::string log_path_;
  std::chrono::milliseconds grace_{10000};
};

} // namespace batchq::dev
