// pool: reusable PostgreSQL sessions, one idle list per pool_key.
//
// Thread-safe: acquire() and the release done by ~pooled_connection may run
// concurrently on any number of threads (one mutex guards the idle lists;
// connecting and closing happen outside it). A pooled_connection itself is
// used by one thread at a time. Handles may outlive their pool: they then
// close their connection instead of returning it.
//
// Contract (docs/postgres.md): a connection goes back to the idle list only
// if it is healthy and outside a transaction block; a broken one is closed and
// dropped, never reused. An idle connection that the server closed meanwhile
// (pg_terminate_backend, restart) is detected at acquire without a round trip
// and replaced by a fresh one.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "src/pg/conninfo.hpp"
#include "src/pg/session.hpp"

namespace batchq::pg {

struct pool_config {
  /// Idle connections kept per key; more are closed on release.
  size_t max_idle_per_key = 4;
  /// libpq connect_timeout (whole seconds; libpq treats 1 as 2).
  std::chrono::seconds connect_timeout{10};
  /// Bounds of every session (session_options).
  session_options session;
  /// Reset a connection when it comes back (session::begin_reset); off only
  /// in tests that look at what a reset would clear.
  bool reset_on_release = true;
};

class pool;

/// A session borrowed from a pool (move-only RAII handle). Destroying it
/// returns the session to the pool, unless the session broke or is inside a
/// transaction block, in which case it is closed.
class pooled_connection {
public:
  pooled_connection(pooled_connection&&) noexcept = default;
  pooled_connection& operator=(pooled_connection&& other) noexcept;
  ~pooled_connection();

  /// REQUIRES: the handle was not moved from.
  session& operator*() const noexcept { return *session_; }
  session* operator->() const noexcept { return session_.get(); }

  const pool_key& key() const noexcept { return key_; }

  /// True if this handle got an idle connection (false: freshly opened).
  bool reused() const noexcept { return reused_; }

  struct shared_state;

private:
  friend class pool;
  pooled_connection(std::weak_ptr<shared_state> owner, pool_key key,
                    std::unique_ptr<session> s, bool reused);
  void release() noexcept;

  std::weak_ptr<shared_state> owner_;
  pool_key key_;
  std::unique_ptr<session> session_;
  bool reused_ = false;
};

class pool {
public:
  explicit pool(pool_config cfg = {});
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// A healthy idle connection for `key`, or a new one opened with
  /// `password` (used only to open it; not stored, not logged; an idle
  /// connection is reused without re-authenticating, so callers must only
  /// pass keys whose password they have looked up).
  /// Errors: ec::pg_connect_failed, context
  /// `cannot connect to the database: <reason>`.
  caf::expected<pooled_connection> acquire(const pool_key& key, const std::string& password);

  /// Idle connections held for `key` / for all keys.
  size_t idle_count(const pool_key& key) const;
  size_t idle_count() const;

  /// Closes every idle connection (handles in use are unaffected).
  void clear();

  const pool_config& config() const noexcept { return cfg_; }

private:
  pool_config cfg_;
  std::shared_ptr<pooled_connection::shared_state> state_;
};

} // namespace batchq::pg
