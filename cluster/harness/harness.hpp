// What the process-level tools of cluster/ share (batchq-chaos, batchq-bench):
// a private redis-server on a free loopback port, printing, and writing many
// Redis commands in pipelined batches. Uses real processes only; no fakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/dev/process.hpp"
#include "src/redis/client.hpp"

namespace batchq::harness {

using clock_type = std::chrono::steady_clock;
using commands = std::vector<std::vector<std::string>>;

double seconds_since(clock_type::time_point t0);

/// `x` with `digits` decimals.
std::string fixed(double x, int digits = 1);

/// Prints "[<tag>] line" on stdout (set the tag once in main).
void set_tag(std::string tag);
void say(const std::string& line);

/// Prints "[<tag>] error: what" on stderr and exits 2.
[[noreturn]] void fatal(const std::string& what);

/// A private redis-server, restartable on the same port and directory.
class redis_proc {
public:
  /// `aof`: append-only file with appendfsync always (an acknowledged write
  /// survives kill -9); otherwise no persistence at all.
  redis_proc(std::string binary, std::string dir, bool aof);

  /// Starts it and waits (bounded) until it answers PING; fatal otherwise.
  void start();
  void kill9();
  void stop();

  uint16_t port() const { return port_; }
  redis::client client(int db) const;

private:
  std::string binary_;
  std::string dir_;
  bool aof_;
  uint16_t port_ = 0;
  std::unique_ptr<dev::child_process> proc_;
};

/// Sends `cmds` in pipelined batches of `batch` and returns every reply, in
/// order; the first failure of a batch is the error.
caf::expected<std::vector<redis::reply>> pipeline_batched(redis::client& c, const commands& cmds,
                                                          size_t batch = 4000);

/// pipeline_batched, fatal on a failure.
void run_commands(redis::client& c, const commands& cmds, size_t batch = 4000);

/// `given` when positive, else $BATCHQ_TEST_PG_PORT (0 when unset).
int pg_port_or_env(int given);

/// Commands creating `user` in CARTO's layout (rails:users + a master key
/// `k<user>` with role postgres and no password) for a database on
/// 127.0.0.1:`pg_port`.
void add_user(commands& cmds, const std::string& user, int pg_port);

/// Commands creating a pending job `id` of `user` running `sql`, queued at
/// the tail of the user's queue (HSET + LPUSH + SADD; no PUBLISH).
void add_job(commands& cmds, const std::string& user, const std::string& id,
             const std::string& sql, int pg_port);

/// A temporary directory /tmp/<prefix>-<pid> (fatal when it cannot be made).
std::string make_run_dir(const std::string& prefix);

} // namespace batchq::harness
