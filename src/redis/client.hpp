// A synchronous Redis connection (hiredis 0.14) that never throws and never
// aborts on a Redis outage.
//
// `client` owns one `redisContext`. Every call returns `caf::expected<T>`:
//   - an error *reply* from Redis becomes `ec::redis_error` carrying Redis' text
//     (the connection stays usable) — except the replies of a Redis that
//     cannot serve yet (LOADING its AOF after a restart, BUSY, MASTERDOWN,
//     TRYAGAIN): the command did not run, so they are `ec::redis_unavailable`
//     like an outage and callers retry;
//   - a connect or IO failure (refused, reset, killed, timed out) becomes
//     `ec::redis_unavailable`; the context is dropped and the next connect attempt
//     is scheduled with exponential backoff (policy below). A call made before
//     that time fails fast with `redis_unavailable` instead of blocking; the first
//     call after it reconnects (connect + SELECT db + SCRIPT LOAD, one pipelined
//     handshake). A command that failed on IO is NOT re-sent: whether Redis ran
//     it is unknown, and the scripts are not idempotent; callers retry.
//
// Thread safety: none. A client is one connection; use one client per thread
// (or per actor). Moving a client transfers the connection.
//
// Costs: `round_trips()` counts network round trips of commands (a command = 1,
// a pipeline of N commands = 1, an EVALSHA that hits NOSCRIPT = 2); connection
// handshakes are counted separately by `connects()`. docs/redis-layout.md lists
// the cost of each operation in ops.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <signal.h>

#include <caf/expected.hpp>

#include "messages/error.hpp"
#include "src/redis/script.hpp"

struct redisContext; // hiredis

namespace batchq::redis {

/// Where to connect. `db` is SELECTed on every (re)connect.
struct endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 5;
  /// Bound on the TCP connect.
  std::chrono::milliseconds connect_timeout{1000};
  /// Bound on each read/write of a command (0 = none). A command that exceeds
  /// it fails with redis_unavailable and drops the connection.
  std::chrono::milliseconds command_timeout{5000};
};

/// Reconnect backoff: after a failure the next attempt waits `initial`, then
/// doubles per consecutive failure up to `max`; a successful connect resets it.
struct backoff_policy {
  std::chrono::milliseconds initial{50};
  std::chrono::milliseconds max{2000};
};

/// One Redis reply as a value (converted from `redisReply*`, which is freed at
/// once). RESP2 only (hiredis 0.14).
struct reply {
  enum class kind : uint8_t { nil, integer, string, status, error, array };

  kind type = kind::nil;
  /// Set when type == integer.
  int64_t integer = 0;
  /// The bytes of a string, status or error reply (binary-safe).
  std::string str;
  /// The elements of an array reply.
  std::vector<reply> elements;

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  bool is_string() const noexcept { return type == kind::string; }
  bool is_integer() const noexcept { return type == kind::integer; }
  bool is_array() const noexcept { return type == kind::array; }

  /// A compact rendering for logs and test failures, e.g. `["a", 1, nil]`.
  std::string to_string() const;

  friend bool operator==(const reply& x, const reply& y) {
    return x.type == y.type && x.integer == y.integer && x.str == y.str
           && x.elements == y.elements;
  }
  friend bool operator!=(const reply& x, const reply& y) { return !(x == y); }
};

/// Blocks SIGPIPE in the calling thread for its lifetime and swallows a SIGPIPE
/// raised meanwhile, so that writing to a socket Redis closed fails with EPIPE
/// instead of killing the process (hiredis 0.14 uses plain write()). Used
/// around every socket write in src/redis; not needed by callers.
class sigpipe_guard {
public:
  sigpipe_guard();
  ~sigpipe_guard();
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
  sigset_t old_mask_;
  bool pending_before_ = false;
};

class client {
public:
  /// Does no IO: the first call connects.
  explicit client(endpoint ep, backoff_policy backoff = {});
  ~client();

  client(client&& other) noexcept;
  client& operator=(client&& other) noexcept;
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Runs one command (binary-safe: each argv element is sent as-is).
  /// REQUIRES: !argv.empty().
  /// Errors: redis_error (Redis' error reply text), redis_unavailable.
  caf::expected<reply> command(const std::vector<std::string>& argv);

  /// Sends all commands, then reads all replies: one round trip. Error replies
  /// are returned in place (kind::error); only IO failures fail the whole call.
  caf::expected<std::vector<reply>> pipeline(const std::vector<std::vector<std::string>>& commands);

  /// Runs `s` with EVALSHA; on NOSCRIPT (script cache flushed, Redis restarted
  /// without a reconnect) runs it with EVAL, which also caches it again.
  /// Errors: redis_error with the script's error text (e.g. "LEASE_LOST alice"),
  /// redis_unavailable.
  caf::expected<reply> eval(const script& s, const std::vector<std::string>& keys,
                            const std::vector<std::string>& args);

  /// The EVALSHA command eval() sends first, for a pipeline (whose caller
  /// then handles a NOSCRIPT answer itself; scripts are loaded at connect).
  static std::vector<std::string> evalsha_command(const script& s,
                                                  const std::vector<std::string>& keys,
                                                  const std::vector<std::string>& args);

  /// Connects now if not connected, obeying the backoff (fails fast while it
  /// runs). Returns a default (no-error) caf::error when connected.
  caf::error ensure_connected();

  /// True while a context is held (it may still turn out dead on next use).
  bool connected() const noexcept { return ctx_ != nullptr; }

  /// Drops the connection without scheduling a backoff.
  void disconnect() noexcept;

  /// Round trips of commands since construction (see the file comment).
  uint64_t round_trips() const noexcept { return round_trips_; }
  /// Successful connection handshakes since construction.
  uint64_t connects() const noexcept { return connects_; }
  /// EVALSHA calls that hit NOSCRIPT and were re-run with EVAL.
  uint64_t noscript_fallbacks() const noexcept { return noscript_fallbacks_; }

  /// Time until the next connect attempt is allowed (0 when connected or due).
  std::chrono::milliseconds retry_in() const;

  const endpoint& where() const noexcept { return ep_; }

private:
  /// Like command() but returns error replies as values.
  caf::expected<reply> exec(const std::vector<std::string>& argv);
  /// An error reply as a caf::error: redis_unavailable for the replies of a
  /// Redis that cannot serve yet (LOADING, BUSY, MASTERDOWN, TRYAGAIN: the
  /// command did not run), else redis_error with Redis' text.
  caf::error error_reply(std::string text) const;
  /// Drops the context after an IO failure, schedules the next attempt and
  /// returns the redis_unavailable error describing `what`.
  caf::error fail_io(const std::string& what);
  std::string describe() const;

  endpoint ep_;
  backoff_policy policy_;
  redisContext* ctx_ = nullptr;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_error_;
  uint64_t round_trips_ = 0;
  uint64_t connects_ = 0;
  uint64_t noscript_fallbacks_ = 0;
};

} // namespace batchq::redis
