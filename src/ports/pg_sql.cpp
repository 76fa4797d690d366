#include "src/ports/pg_sql.hpp"

#include <charconv>

#include "messages/error.hpp"
#include "src/pg/backend_cancel.hpp"
#include "src/redis/keys.hpp"

namespace batchq::ports {

// -- pg_sql_session -------------------------------------------------------------

pg_sql_session::pg_sql_session(pg::pooled_connection conn) : conn_(std::move(conn)) {
  // nop
}

caf::expected<pg::statement_result> pg_sql_session::execute(const std::string& job_id,
                                                            const std::string& sql,
                                                            int64_t timeout_ms,
                                                            const pg::cancel_token* token,
                                                            bool standard_strings,
                                                            pg::row_sink* rows) {
  return conn_->execute(job_id, sql, timeout_ms, token, standard_strings, rows);
}

// -- pg_sql_connector -----------------------------------------------------------

pg_sql_connector::pg_sql_connector(std::shared_ptr<pg::pool> pool) : pool_(std::move(pool)) {
  // nop
}

caf::expected<std::unique_ptr<sql_session>>
pg_sql_connector::connect(const pg::pool_key& key, const std::string& password) {
  auto conn = pool_->acquire(key, password);
  if (!conn)
    return std::move(conn.error());
  return std::unique_ptr<sql_session>{new pg_sql_session(std::move(*conn))};
}

// -- pg_backend_cancel ----------------------------------------------------------

pg_backend_cancel::pg_backend_cancel(redis::endpoint batch_db,
                                     std::shared_ptr<job_environment> env,
                                     std::shared_ptr<pg::pool> pool, uint16_t default_pg_port)
  : client_(std::move(batch_db)),
    env_(std::move(env)),
    pool_(std::move(pool)),
    default_pg_port_(default_pg_port) {
  // nop
}

caf::expected<int> pg_backend_cancel::cancel_backends_of_job(const std::string& job_id,
                                                            const std::string& user) {
  auto conn = connect_for_job(job_id, user);
  if (!conn)
    return std::move(conn.error());
  return pg::cancel_backends_of_job(**conn, job_id);
}

caf::expected<int> pg_backend_cancel::stop_backends_of_job(const std::string& job_id,
                                                          const std::string& user,
                                                          std::chrono::milliseconds bound) {
  auto conn = connect_for_job(job_id, user);
  if (!conn)
    return std::move(conn.error());
  return pg::stop_backends_of_job(**conn, job_id, bound);
}

caf::expected<pg::pooled_connection>
pg_backend_cancel::connect_for_job(const std::string& job_id, const std::string& user) {
  caf::expected<redis::reply> rec{caf::error{}};
  {
    std::lock_guard<std::mutex> guard{mtx_};
    rec = client_.command(
      {"HMGET", redis::keys::job(job_id), "user", "host", "port", "dbname", "dbuser", "pass"});
  }
  if (!rec)
    return std::move(rec.error());
  auto field = [&](size_t i) -> std::optional<std::string> {
    if (rec->is_array() && i < rec->elements.size() && rec->elements[i].is_string())
      return rec->elements[i].str;
    return std::nullopt;
  };
  if (field(0).value_or("") != user || user.empty())
    return make_error(ec::job_not_found, "Job with id " + job_id + " not found");
  pg::pool_key key;
  key.host = field(1).value_or("");
  key.dbname = field(3).value_or("");
  key.role = field(4).value_or("");
  key.port = default_pg_port_;
  auto port = field(2).value_or("");
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (err != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
      return make_error(ec::pg_connect_failed,
                        "cannot connect to the database: invalid port " + port);
    key.port = static_cast<uint16_t>(value);
  }
  auto password = field(5);
  if (!password) {
    auto p = env_->password(user, key.role);
    if (!p)
      return std::move(p.error());
    password = std::move(*p);
  }
  if (!password)
    return make_error(ec::pg_connect_failed,
                      "cannot connect to the database: no credentials for role " + key.role);
  return pool_->acquire(key, *password);
}

} // namespace batchq::ports
