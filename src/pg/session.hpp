// session: one PostgreSQL connection that runs job statements.
//
// A session is owned by one thread at a time (normally through a
// pooled_connection from pool.hpp); it is not thread-safe. The only
// cross-thread interaction is through a cancel_token, which never touches the
// session: the executing thread itself sends PostgreSQL's cancel request when
// it sees the token fire (docs/postgres.md, "Cancel").
//
// libpqxx owns the connection (opening, closing, no silent reactivation);
// statements are sent with libpq's asynchronous API on that handle so that
// the executing thread can wait for the server and for a cancel at once.
// No libpqxx exception escapes this file's functions: failures are
// `caf::expected` errors (ec::pg_connect_failed, ec::pg_connection_lost,
// ec::pg_statement_failed) and a failed *job statement* is a statement_result.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "src/job/rows.hpp"
#include "src/pg/cancel_token.hpp"

namespace batchq::pg {

/// Receives the rows of a job statement while it runs (kept results, SPEC §11;
/// docs/results.md). Called on the executing thread, inside execute, in order.
class row_sink {
public:
  virtual ~row_sink() = default;

  /// A statement of the string produced its result: `columns` (empty for a
  /// statement without rows, e.g. an INSERT or a COPY) with their type OIDs and,
  /// for built-in types, names. Whatever came before belonged to an earlier
  /// statement of the string; a sink that keeps the last statement's rows
  /// drops it.
  virtual void begin_result(std::vector<job::result_column> columns) = 0;

  /// The next row of the current result, in PostgreSQL's text forms.
  virtual void row(job::result_row row) = 0;

  /// After a statement that succeeded: the names (`pg_type.typname`) of the
  /// column types begin_result gave without one, looked up in one more round
  /// trip. Not called when there were none or the lookup failed.
  virtual void type_names(const std::map<uint32_t, std::string>& names) { (void)names; }
};

/// A statement PostgreSQL refused or aborted. `message` is the server's
/// primary message only: no `ERROR:  ` prefix, no DETAIL/HINT/LINE lines,
/// no trailing newline (e.g. `relation "t" does not exist`).
struct statement_error {
  std::string sqlstate; ///< five characters, e.g. "57014"; empty for client-side errors
  std::string message;

  friend bool operator==(const statement_error& a, const statement_error& b) {
    return a.sqlstate == b.sqlstate && a.message == b.message;
  }
};

/// How a statement ended while the connection stayed usable.
enum class outcome {
  succeeded, ///< every statement of the string completed
  failed,    ///< the server reported an error (`error` says which)
  cancelled, ///< the token fired and the statement did not complete (never sent, or stopped)
};

const char* to_string(outcome x);

struct statement_result {
  outcome what = outcome::succeeded;
  /// Set for `failed`; for `cancelled` it holds the server's error when the
  /// statement had been sent (normally 57014 `canceling statement due to user
  /// request`) and is empty when nothing was sent.
  statement_error error;
  /// False only when the statement was never sent (a cancel that came first).
  bool sent = true;

  bool ok() const noexcept { return what == outcome::succeeded; }
};

/// PostgreSQL's statement_timeout is an int of milliseconds; larger values
/// are clamped to this (about 24.8 days).
inline constexpr int64_t max_statement_timeout_ms = 2147483647;

/// How long a session waits for the server (docs/postgres.md, "Timeouts").
struct session_options {
  /// A statement still running `result_grace` after its statement_timeout is
  /// cancelled by batchq (its own SET may have lifted the server's timeout);
  /// when no answer comes within another `result_grace`, the connection is
  /// given up as lost. batchq's own short statements get the same bounds
  /// counted from 0.
  std::chrono::milliseconds result_grace{5000};
  /// client_connection_check_interval on PostgreSQL 14+ (0: not set): the
  /// server stops a statement whose client went away.
  std::chrono::milliseconds client_check_interval{5000};
};

class session {
public:
  /// Opens a connection. The conninfo (with its password) is handed to libpq
  /// and not kept; then sets the session defaults (one round trip on
  /// PostgreSQL 14+). Errors: ec::pg_connect_failed with context `cannot
  /// connect to the database: <reason>` (connect_failure_reason).
  static caf::expected<std::unique_ptr<session>> connect(const std::string& conninfo,
                                                         session_options opts = {});

  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Runs `sql` (one or several statements, simple query protocol: results
  /// discarded; if one fails, the whole string is rolled back) as exactly
  /// `/* <job_id> */ <sql>` under `statement_timeout = timeout_ms` (0 = no
  /// timeout). Sends `SET statement_timeout` first only when the value
  /// differs from the one this session last set (1 round trip when unchanged,
  /// 2 when it changes). With `standard_strings`, the same first round trip
  /// also sets standard_conforming_strings on if the server reports it off
  /// (a fallback with a quoted error message: docs/postgres.md).
  ///
  /// Bounded: still running `result_grace` past `timeout_ms`, the statement
  /// is cancelled and fails with `canceling statement due to statement
  /// timeout (<n> ms, enforced by batchq)`; with no answer another
  /// `result_grace` later, the connection is lost ("no answer from the
  /// database server in time ...").
  ///
  /// With `rows`, each statement's result and rows go to the sink as they
  /// arrive (one row at a time: see docs/postgres.md); without, they are read
  /// and dropped.
  ///
  /// With a token: returns `cancelled` without sending anything when the
  /// token has fired; otherwise sends a cancel request as soon as it fires
  /// and re-sends it (after 20 ms, then at doubling intervals up to 500 ms)
  /// until the statement ends.
  ///
  /// Errors (the session is then broken and must be discarded):
  /// ec::pg_connection_lost with context `connection to the database was
  /// lost: <reason>`. ec::invalid_job when `job_id` cannot be put in an SQL
  /// comment (it must be non-empty and contain only [A-Za-z0-9_.:-]).
  /// REQUIRES: timeout_ms >= 0 (negative values are treated as 0); !broken().
  caf::expected<statement_result> execute(std::string_view job_id, std::string_view sql,
                                          int64_t timeout_ms,
                                          const cancel_token* token = nullptr,
                                          bool standard_strings = false,
                                          row_sink* rows = nullptr);

  /// Runs one batchq-internal query with text parameters ($1, $2, ...) and
  /// returns the first column of the first row (nullopt for no row or NULL).
  /// Errors: ec::pg_statement_failed (`<sqlstate>: <message>`),
  /// ec::pg_connection_lost (session broken).
  caf::expected<std::optional<std::string>> query_value(std::string_view sql,
                                                        const std::vector<std::string>& params);

  /// The server process id (for pg_stat_activity / pg_cancel_backend).
  int backend_pid() const noexcept;

  /// Number of statements sent to the server so far (each one is a round trip;
  /// cancel requests travel on their own connection and are not counted).
  uint64_t round_trips() const noexcept { return round_trips_; }

  /// The statement_timeout this session knows to be in effect, if any.
  std::optional<int64_t> known_timeout_ms() const noexcept { return timeout_ms_; }

  /// True once the connection failed; a broken session is never reused.
  bool broken() const noexcept { return broken_; }

  /// A check for an idle session taken from the pool: false if the
  /// connection is broken, has an open transaction, or the server closed it
  /// (e.g. pg_terminate_backend) while it sat idle. Reads the answer of a
  /// reset sent by begin_reset() first (bounded by result_grace); otherwise
  /// no round trip.
  bool healthy_when_idle() noexcept;

  /// Sends the reset of everything a job may have changed in the session
  /// (roles, settings, prepared statements, cursors, LISTEN, advisory locks,
  /// temporary tables; then the session defaults and the last
  /// statement_timeout) without waiting for its answer: the pool calls this
  /// when a connection comes back, and the answer is read when it is taken
  /// again (finish_reset, or any statement). A session inside a transaction
  /// block or that cannot send is marked broken.
  void begin_reset() noexcept;

  /// Reads the answer of begin_reset(); false (and broken) when the reset
  /// failed. True when no reset is pending and the session is not broken.
  bool finish_reset() noexcept;

  /// True when no transaction block is open (the state a pooled connection
  /// must be returned in).
  bool idle_outside_transaction() const noexcept;

  struct impl;

private:
  session(std::unique_ptr<impl> p, session_options opts);
  std::string defaults_sql() const;
  caf::expected<void> apply_defaults();

  std::unique_ptr<impl> impl_;
  session_options opts_;
  std::optional<int64_t> timeout_ms_;
  uint64_t round_trips_ = 0;
  bool broken_ = false;
  bool reset_pending_ = false;
};

} // namespace batchq::pg
