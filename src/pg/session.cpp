#include "src/pg/session.hpp"

#include <cctype>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>
#include <new>

#include <libpq-fe.h>
#include <poll.h>

#include <pqxx/connection_base>
#include <pqxx/connectionpolicy>
#include <pqxx/except>

#include "messages/error.hpp"
#include "src/metrics/metrics.hpp"
#include "src/pg/conninfo.hpp"

namespace batchq::pg {

const char* to_string(outcome x) {
  switch (x) {
    case outcome::succeeded: return "succeeded";
    case outcome::failed: return "failed";
    case outcome::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

using clock_type = std::chrono::steady_clock;

/// A cancel request is re-sent while the statement has not ended: first
/// after 20 ms, then at doubling intervals up to 500 ms (a statement that is
/// slow to abort, e.g. rolling back a large transaction, should not cost the
/// server a forked cancel handler every 20 ms).
constexpr auto cancel_resend_interval = std::chrono::milliseconds{20};
constexpr auto cancel_resend_max_interval = std::chrono::milliseconds{500};

// --- the libpqxx side: a connection whose libpq handle we can reach ---------

// A connection policy that connects once with a conninfo it does not keep,
// remembers the libpq handle, and refuses to reconnect (libpqxx 6 would
// otherwise "reactivate" a broken connection silently: TOOLCHAIN.md §7).
class capture_policy : public pqxx::connectionpolicy {
public:
  explicit capture_policy(const std::string* conninfo)
    : pqxx::connectionpolicy{std::string{}}, conninfo_(conninfo) {
    // nop
  }

  handle do_startconnect(handle orig) override {
    if (orig != nullptr)
      return orig;
    if (conninfo_ == nullptr)
      throw pqxx::broken_connection{"a batchq connection is never reopened"};
    handle c = PQconnectdb(conninfo_->c_str());
    conninfo_ = nullptr;
    if (c == nullptr)
      throw std::bad_alloc{};
    if (PQstatus(c) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(c);
      PQfinish(c);
      throw pqxx::broken_connection{msg};
    }
    raw_ = c;
    return c;
  }

  handle do_disconnect(handle orig) noexcept override {
    raw_ = nullptr;
    return pqxx::connectionpolicy::do_disconnect(orig);
  }

  PGconn* raw() const noexcept { return raw_; }

private:
  const std::string* conninfo_;
  PGconn* raw_ = nullptr;
};

class pqxx_connection : public pqxx::connection_base {
public:
  // Throws what libpqxx throws (pqxx::broken_connection, std::bad_alloc, ...).
  explicit pqxx_connection(const std::string& conninfo)
    : pqxx::connection_base{policy_}, policy_{&conninfo} {
    init();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    inhibit_reactivation(true);
#pragma GCC diagnostic pop
  }

  ~pqxx_connection() { close(); }

  PGconn* raw() const noexcept { return policy_.raw(); }

private:
  capture_policy policy_;
};

bool valid_job_id(std::string_view id) {
  if (id.empty() || id.size() > 128)
    return false;
  for (char c : id) {
    auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == ':'))
      return false;
  }
  return true;
}

// True if `sql` may change statement_timeout for the session (SET/RESET,
// set_config, DISCARD ALL); the tracked value is then forgotten.
bool may_change_timeout(std::string_view sql) {
  std::string lower;
  lower.reserve(sql.size());
  for (char c : sql)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("statement_timeout") != std::string::npos
         || lower.find("reset") != std::string::npos
         || lower.find("discard") != std::string::npos;
}

struct server_error {
  statement_error err;
  bool fatal = false; // FATAL or PANIC: the server is closing the connection
};

server_error error_of(const PGresult* r) {
  server_error out;
  if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE))
    out.err.sqlstate = s;
  if (const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY))
    out.err.message = m;
  else
    out.err.message = first_line_without_severity(PQresultErrorMessage(r));
  while (!out.err.message.empty()
         && std::isspace(static_cast<unsigned char>(out.err.message.back())))
    out.err.message.pop_back();
  if (const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED)) {
    std::string_view v{sev};
    out.fatal = v == "FATAL" || v == "PANIC";
  }
  return out;
}

// Sends PostgreSQL cancel requests for one connection, at most every
// cancel_resend_interval. PQcancel opens its own short connection to the
// server and returns once the server has signalled the backend.
class canceller {
public:
  explicit canceller(PGcancel*& obj, PGconn* conn) : obj_(obj), conn_(conn) {
    // nop
  }

  // Sends a request if the last one is older than the interval; returns the
  // milliseconds until the next one is due.
  int tick() {
    auto now = clock_type::now();
    if (now >= next_) {
      if (obj_ == nullptr)
        obj_ = PQgetCancel(conn_);
      if (obj_ != nullptr) {
        char errbuf[256];
        PQcancel(obj_, errbuf, sizeof(errbuf)); // failure: retried next tick
      }
      now = clock_type::now();
      next_ = now + interval_;
      interval_ = std::min(interval_ * 2, cancel_resend_max_interval);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - now).count();
    return ms < 1 ? 1 : static_cast<int>(ms);
  }

private:
  PGcancel*& obj_;
  PGconn* conn_;
  clock_type::time_point next_{};
  std::chrono::milliseconds interval_ = cancel_resend_interval;
};

// Blocks until the connection's socket is readable. While the token has
// fired, cancel requests go out meanwhile. False when the socket is unusable.
bool wait_readable(PGconn* c, canceller& cx, const cancel_token* token) {
  int sock = PQsocket(c);
  if (sock < 0)
    return false;
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    fds[n++] = pollfd{sock, POLLIN, 0};
    int timeout = -1;
    if (token != nullptr) {
      if (token->cancelled())
        timeout = cx.tick();
      else if (token->wake_fd() >= 0)
        fds[n++] = pollfd{token->wake_fd(), POLLIN, 0};
      else
        timeout = static_cast<int>(cancel_resend_interval.count());
    }
    int r = ::poll(fds, n, timeout);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    if (fds[0].revents != 0)
      return true;
    // Timeout or the token's eventfd: loop, which sends the cancel.
  }
}

// What one exchange (one statement string sent, all results read) produced.
struct exchange {
  bool lost = false;
  std::string lost_reason;
  std::optional<server_error> error; // the first error result
  std::optional<std::string> value;  // first column of the first row, if asked
};

// Sends `sql` (with `params` via the extended protocol when given) and reads
// every result. Never throws.
exchange round_trip(PGconn* c, PGcancel*& cancel_obj, const std::string& sql,
                    const std::vector<std::string>* params, const cancel_token* token,
                    bool want_value) {
  exchange ex;
  auto lose = [&](const char* fallback) {
    ex.lost = true;
    if (ex.error && ex.error->fatal && !ex.error->err.message.empty())
      ex.lost_reason = ex.error->err.message;
    else {
      const char* m = PQerrorMessage(c);
      ex.lost_reason = (m != nullptr && *m != '\0') ? first_line_without_severity(m) : fallback;
    }
    return ex;
  };
  int sent;
  if (params == nullptr) {
    sent = PQsendQuery(c, sql.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params->size());
    for (auto& p : *params)
      values.push_back(p.c_str());
    sent = PQsendQueryParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  }
  if (sent == 0)
    return lose("could not send the statement");
  metrics::global().postgres_round_trips.fetch_add(1, std::memory_order_relaxed);
  canceller cx{cancel_obj, c};
  bool value_seen = false;
  for (;;) {
    while (PQisBusy(c)) {
      if (!wait_readable(c, cx, token) || PQconsumeInput(c) == 0)
        return lose("server closed the connection unexpectedly");
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr)
      break;
    switch (PQresultStatus(r)) {
      case PGRES_FATAL_ERROR:
      case PGRES_NONFATAL_ERROR:
        if (!ex.error)
          ex.error = error_of(r);
        break;
      case PGRES_TUPLES_OK:
      case PGRES_SINGLE_TUPLE:
        if (want_value && !value_seen) {
          value_seen = true;
          if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
            ex.value = std::string{PQgetvalue(r, 0, 0),
                                   static_cast<size_t>(PQgetlength(r, 0, 0))};
        }
        break;
      case PGRES_COPY_IN:
        // No client data to offer: end the COPY with an error; the server
        // then answers with an error result for the statement.
        if (PQputCopyEnd(c, "COPY FROM STDIN is not supported in batch jobs") < 0) {
          PQclear(r);
          return lose("could not end COPY FROM STDIN");
        }
        break;
      case PGRES_COPY_OUT: {
        // Rows are discarded like any other result rows.
        for (;;) {
          char* buf = nullptr;
          int n = PQgetCopyData(c, &buf, 1);
          if (buf != nullptr)
            PQfreemem(buf);
          if (n > 0)
            continue;
          if (n == 0) {
            if (!wait_readable(c, cx, token) || PQconsumeInput(c) == 0) {
              PQclear(r);
              return lose("server closed the connection unexpectedly");
            }
            continue;
          }
          break; // -1: done (the final result follows), -2: error (ditto)
        }
        break;
      }
      case PGRES_COPY_BOTH:
        PQclear(r);
        return lose("replication protocol is not supported");
      default:
        break;
    }
    PQclear(r);
  }
  if (PQstatus(c) != CONNECTION_OK)
    return lose("server closed the connection unexpectedly");
  return ex;
}

} // namespace

struct session::impl {
  explicit impl(const std::string& conninfo) : conn(conninfo) {
    // nop
  }
  ~impl() {
    if (cancel_obj != nullptr)
      PQfreeCancel(cancel_obj);
  }
  pqxx_connection conn;
  PGcancel* cancel_obj = nullptr;
};

session::session(std::unique_ptr<impl> p) : impl_(std::move(p)) {
  // nop
}

session::~session() = default;

caf::expected<std::unique_ptr<session>> session::connect(const std::string& conninfo) {
  std::string reason;
  try {
    auto p = std::make_unique<impl>(conninfo);
    if (p->conn.raw() == nullptr || PQstatus(p->conn.raw()) != CONNECTION_OK)
      reason = "connection not established";
    else
      return std::unique_ptr<session>{new session(std::move(p))};
  } catch (const pqxx::broken_connection& e) {
    reason = connect_failure_reason(e.what());
  } catch (const std::bad_alloc&) {
    reason = "out of memory";
  } catch (const std::exception& e) {
    reason = connect_failure_reason(e.what());
  }
  return make_error(ec::pg_connect_failed, "cannot connect to the database: " + reason);
}

int session::backend_pid() const noexcept {
  auto* c = impl_->conn.raw();
  return c != nullptr ? PQbackendPID(c) : 0;
}

bool session::idle_outside_transaction() const noexcept {
  auto* c = impl_->conn.raw();
  return c != nullptr && PQtransactionStatus(c) == PQTRANS_IDLE;
}

bool session::healthy_when_idle() noexcept {
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr || PQstatus(c) != CONNECTION_OK
      || PQtransactionStatus(c) != PQTRANS_IDLE)
    return false;
  int sock = PQsocket(c);
  if (sock < 0)
    return false;
  pollfd p{sock, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return true;
  // Nothing is expected on an idle connection: whatever came (a termination
  // notice before EOF, a NOTIFY, ...) makes us discard it rather than guess.
  PQconsumeInput(c);
  while (PGnotify* n = PQnotifies(c))
    PQfreemem(n);
  broken_ = true;
  return false;
}

caf::expected<statement_result> session::execute(std::string_view job_id, std::string_view sql,
                                                 int64_t timeout_ms, const cancel_token* token) {
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr) {
    broken_ = true;
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: the connection is broken");
  }
  if (!valid_job_id(job_id))
    return make_error(ec::invalid_job, "a job id must match [A-Za-z0-9_.:-]{1,128}");
  statement_result res;
  auto cancelled_before_sending = [&] {
    res.what = outcome::cancelled;
    res.sent = false;
    return res;
  };
  if (token != nullptr && token->stop_requested())
    return cancelled_before_sending();
  if (sql.find('\0') != std::string_view::npos) {
    res.what = outcome::failed;
    res.sent = false;
    res.error = statement_error{"22021", "the query contains a NUL byte"};
    return res;
  }
  const std::string prefix = "/* " + std::string{job_id} + " */ ";
  auto lost = [&](const exchange& ex) {
    broken_ = true;
    timeout_ms_.reset();
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: " + ex.lost_reason);
  };
  // 1. statement_timeout, only when it changes.
  if (timeout_ms < 0)
    timeout_ms = 0;
  if (timeout_ms > max_statement_timeout_ms)
    timeout_ms = max_statement_timeout_ms;
  bool forget_timeout_after = false;
  if (timeout_ms_ != timeout_ms) {
    // A SET inside a transaction block is undone by a later ROLLBACK.
    forget_timeout_after = PQtransactionStatus(c) != PQTRANS_IDLE;
    timeout_ms_.reset();
    ++round_trips_;
    auto ex = round_trip(c, impl_->cancel_obj,
                         prefix + "SET statement_timeout = " + std::to_string(timeout_ms),
                         nullptr, token, false);
    if (ex.lost)
      return lost(ex);
    if (ex.error) {
      if (token != nullptr && token->cancelled())
        return cancelled_before_sending();
      res.what = outcome::failed;
      res.error = std::move(ex.error->err);
      return res;
    }
    timeout_ms_ = timeout_ms;
  }
  // 2. A cancel (or the lease deadline) that came while setting the timeout
  // still wins.
  if (token != nullptr && token->stop_requested())
    return cancelled_before_sending();
  // 3. The statement itself.
  ++round_trips_;
  std::string text;
  text.reserve(prefix.size() + sql.size());
  text += prefix;
  text += sql;
  auto ex = round_trip(c, impl_->cancel_obj, text, nullptr, token, false);
  if (ex.lost)
    return lost(ex);
  if (forget_timeout_after || may_change_timeout(sql))
    timeout_ms_.reset();
  if (ex.error) {
    res.what = (token != nullptr && token->cancelled()) ? outcome::cancelled : outcome::failed;
    res.error = std::move(ex.error->err);
  }
  return res;
}

caf::expected<std::optional<std::string>>
session::query_value(std::string_view sql, const std::vector<std::string>& params) {
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr) {
    broken_ = true;
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: the connection is broken");
  }
  ++round_trips_;
  auto ex = round_trip(c, impl_->cancel_obj, std::string{sql}, &params, nullptr, true);
  if (ex.lost) {
    broken_ = true;
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: " + ex.lost_reason);
  }
  if (ex.error)
    return make_error(ec::pg_statement_failed,
                      ex.error->err.sqlstate + ": " + ex.error->err.message);
  return std::move(ex.value);
}

} // namespace batchq::pg
