#include "src/dev/provision.hpp"

#include <memory>

#include <libpq-fe.h>

#include "messages/error.hpp"
#include "src/redis/users.hpp"

namespace batchq::dev {

namespace {

struct conn_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
struct escaped_deleter {
  void operator()(char* s) const { PQfreemem(s); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_deleter>;
using escaped_ptr = std::unique_ptr<char, escaped_deleter>;

std::string trimmed(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

caf::error exec(PGconn* c, const std::string& sql, const std::string& what) {
  std::unique_ptr<PGresult, result_deleter> r{PQexec(c, sql.c_str())};
  if (PQresultStatus(r.get()) == PGRES_COMMAND_OK)
    return caf::none;
  return make_error(ec::pg_statement_failed,
                    "cannot " + what + ": " + trimmed(PQresultErrorMessage(r.get())));
}

} // namespace

caf::error create_demo_database(const superuser_target& pg, const demo_account& account) {
  auto port = std::to_string(pg.port);
  const char* keys[] = {"host", "port", "user", "dbname", "connect_timeout",
                        "application_name", nullptr};
  const char* values[] = {pg.socket_dir.c_str(), port.c_str(), pg.user.c_str(), "postgres", "10",
                          "batchq dev", nullptr};
  conn_ptr c{PQconnectdbParams(keys, values, 0)};
  if (!c || PQstatus(c.get()) != CONNECTION_OK)
    return make_error(ec::pg_connect_failed,
                      "cannot connect to the embedded PostgreSQL as " + pg.user + ": "
                        + trimmed(c ? PQerrorMessage(c.get()) : "out of memory"));
  escaped_ptr role{PQescapeIdentifier(c.get(), account.role.data(), account.role.size())};
  escaped_ptr db{PQescapeIdentifier(c.get(), account.database.data(), account.database.size())};
  escaped_ptr pass{PQescapeLiteral(c.get(), account.password.data(), account.password.size())};
  if (!role || !db || !pass)
    return make_error(ec::pg_statement_failed,
                      "cannot quote the demo names: " + trimmed(PQerrorMessage(c.get())));
  if (auto err = exec(c.get(),
                      std::string{"CREATE ROLE "} + role.get() + " LOGIN PASSWORD " + pass.get(),
                      "create role " + account.role))
    return err;
  return exec(c.get(), std::string{"CREATE DATABASE "} + db.get() + " OWNER " + role.get(),
              "create database " + account.database);
}

caf::expected<std::string> add_demo_user(redis::client& metadata, const demo_account& account,
                                         uint16_t pg_port) {
  redis::user_account u;
  u.user = account.user;
  u.database_host = "127.0.0.1";
  u.database_port = pg_port;
  u.database_name = account.database;
  u.database_role = account.role;
  u.database_password = account.password;
  return redis::add_user(metadata, u);
}

} // namespace batchq::dev
