// Pool keys and libpq connection strings (docs/postgres.md, "Pool keying" and
// "conninfo quoting").
//
// Pure functions and a value type: no I/O, safe to use from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace batchq::pg {

/// What identifies a pooled connection: a connection for one key may serve any
/// job of any user whose job names the same host, port, database and role
/// (SPEC §6). The password is deliberately NOT part of the key: it is only
/// needed to open a connection and is never stored by batchq.
struct pool_key {
  std::string host;
  uint16_t port = 5432;
  std::string dbname;
  std::string role;

  friend bool operator==(const pool_key& a, const pool_key& b) {
    return a.port == b.port && a.host == b.host && a.dbname == b.dbname && a.role == b.role;
  }
  friend bool operator!=(const pool_key& a, const pool_key& b) { return !(a == b); }
  friend bool operator<(const pool_key& a, const pool_key& b);
};

/// "role@host:port/dbname", for logs (never contains a password).
std::string to_string(const pool_key& key);

/// One conninfo value in libpq's quoted form: wrapped in single quotes, with
/// every `'` and `\` preceded by a backslash. Any byte string survives the
/// round trip through libpq's parser (spaces, quotes, backslashes, `=`).
std::string quote_conninfo_value(std::string_view value);

/// The libpq connection string for `key`: host, port, dbname, user, password
/// (omitted when empty), `application_name=batchq`, `connect_timeout`
/// (seconds; libpq treats 1 as 2), TCP keepalives (10 s idle, 5 s interval,
/// 3 probes) and `tcp_user_timeout=30000`. Every value is quoted with
/// quote_conninfo_value. The result contains the password: callers must not
/// log it and should drop it right after connecting.
std::string make_conninfo(const pool_key& key, std::string_view password,
                          std::chrono::seconds connect_timeout);

/// The reason shown to users for a failed connection attempt, from libpq's
/// (possibly multi-line) error message: the first line, without libpq's
/// `connection to server at "...", port N failed: ` preamble (which would leak
/// the database host) and without a severity prefix such as `FATAL:  `.
/// E.g. `database "x" does not exist`, `Connection refused`.
std::string connect_failure_reason(std::string_view libpq_message);

/// The first line of a server or libpq message without a leading severity
/// (`ERROR:  `, `FATAL:  `, ...) and trailing whitespace; "unknown error" when
/// nothing is left.
std::string first_line_without_severity(std::string_view message);

} // namespace batchq::pg
