// The real PostgreSQL ports (SPEC §5, §6): job sessions from a shared
// pg::pool, and the pg_cancel_backend fallback of the canceller.
//
// pg_sql_connector::connect hands out a pg_sql_session that holds a
//   pg::pooled_connection: the connection goes back to the pool (or is closed,
//   when broken or inside a transaction block) when the session object dies.
//   execute is pg::session::execute (`/* <job_id> */ <sql>`, statement_timeout
//   set only when it changes, the cancel token honoured).
// pg_backend_cancel reads the job's record (one HMGET on the batch DB), finds
//   the role's password (the record's `pass`, else the job environment), takes
//   a pooled connection of that role and runs pg::cancel_backends_of_job (one
//   round trip), so it may only signal backends of the job's own role.
//
// Thread-safety: pg_sql_connector is shared by every runner thread (pg::pool
// is thread-safe); a pg_sql_session is used by one thread at a time (its
// runner). pg_backend_cancel is thread-safe (a mutex guards its Redis
// connection). Every call BLOCKS: only detached actors call them.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "src/pg/pool.hpp"
#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class pg_sql_session : public sql_session {
public:
  explicit pg_sql_session(pg::pooled_connection conn);

  /// Errors: pg_connection_lost (the session is then broken and is closed
  /// instead of being returned to the pool), invalid_job (a job id that
  /// cannot go into an SQL comment).
  caf::expected<pg::statement_result> execute(const std::string& job_id, const std::string& sql,
                                              int64_t timeout_ms, const pg::cancel_token* token,
                                              bool standard_strings,
                                              pg::row_sink* rows) override;

  /// The pooled connection (tests: reuse, backend pid).
  const pg::pooled_connection& connection() const noexcept { return conn_; }

private:
  pg::pooled_connection conn_;
};

class pg_sql_connector : public sql_connector {
public:
  /// REQUIRES: pool != nullptr.
  explicit pg_sql_connector(std::shared_ptr<pg::pool> pool);

  /// pg::pool::acquire. Errors: pg_connect_failed (`cannot connect to the
  /// database: <reason>`).
  caf::expected<std::unique_ptr<sql_session>> connect(const pg::pool_key& key,
                                                      const std::string& password) override;

private:
  std::shared_ptr<pg::pool> pool_;
};

class pg_backend_cancel : public backend_cancel {
public:
  /// `batch_db`: where `batch:jobs:{id}` live (redis.db). `default_pg_port`:
  /// for records with an empty `port` (postgres.port). REQUIRES: env, pool
  /// non-null. Does no IO.
  pg_backend_cancel(redis::endpoint batch_db, std::shared_ptr<job_environment> env,
                    std::shared_ptr<pg::pool> pool, uint16_t default_pg_port);

  /// Errors: job_not_found (no such job, or another user's), pg_connect_failed
  /// (also when the role has no credentials), pg_statement_failed,
  /// pg_connection_lost, redis_unavailable.
  caf::expected<int> cancel_backends_of_job(const std::string& job_id,
                                            const std::string& user) override;

  /// The same connection, then pg::stop_backends_of_job.
  caf::expected<int> stop_backends_of_job(const std::string& job_id, const std::string& user,
                                          std::chrono::milliseconds bound) override;

private:
  /// Reads the job's record (one HMGET), finds the role's password and takes
  /// a pooled connection of that role.
  caf::expected<pg::pooled_connection> connect_for_job(const std::string& job_id,
                                                       const std::string& user);

  std::mutex mtx_; // guards client_
  redis::client client_;
  std::shared_ptr<job_environment> env_;
  std::shared_ptr<pg::pool> pool_;
  uint16_t default_pg_port_;
};

} // namespace batchq::ports
