#include "src/pg/session.hpp"

#include <atomic>
#include <cctype>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <exception>
#include <memory>
#include <new>
#include <set>
#include <cstdlib>
#include <thread>
#include <condition_variable>
#include <mutex>

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
// cancel_resend_interval. PQcancel opens its own connection to the server and
// blocks until the server took the request, with no timeout of its own (libpq
// 15): against a host that vanished it can hang for minutes. So each request
// goes out on a short detached thread with its own PGcancel object, at most
// one in flight per statement; the executing thread never waits for it.
/// A session's cancel request in flight on its helper thread. The session
/// waits for it before its next statement: a request that reaches the server
/// late would otherwise cancel that statement instead.
struct cancel_flight {
  std::mutex mtx;
  std::condition_variable cv;
  bool busy = false; // guarded by mtx

  bool try_start() {
    std::lock_guard<std::mutex> guard{mtx};
    if (busy)
      return false;
    busy = true;
    return true;
  }
  void done() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      busy = false;
    }
    cv.notify_all();
  }
  /// False when the request is still out after `bound`.
  bool wait_idle(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, bound, [this] { return !busy; });
  }
};

class canceller {
public:
  canceller(PGconn* conn, std::shared_ptr<cancel_flight> flight)
    : conn_(conn), flight_(std::move(flight)) {
    // nop
  }

  // Sends a request if the last one is older than the interval (and none is
  // still in flight); returns the milliseconds until the next one is due.
  int tick() {
    auto now = clock_type::now();
    if (now >= next_) {
      if (flight_->try_start())
        send();
      now = clock_type::now();
      next_ = now + interval_;
      interval_ = std::min(interval_ * 2, cancel_resend_max_interval);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - now).count();
    return ms < 1 ? 1 : static_cast<int>(ms);
  }

private:
  void send() {
    PGcancel* obj = PQgetCancel(conn_);
    if (obj == nullptr) {
      flight_->done();
      return;
    }
    auto run = [obj, flight = flight_] {
      char errbuf[256];
      PQcancel(obj, errbuf, sizeof(errbuf)); // failure: retried next tick
      PQfreeCancel(obj);
      flight->done();
    };
    try {
      std::thread{run}.detach();
    } catch (...) {
      run(); // no thread to be had: send it from here
    }
  }

  PGconn* conn_;
  std::shared_ptr<cancel_flight> flight_;
  clock_type::time_point next_{};
  std::chrono::milliseconds interval_ = cancel_resend_interval;
};

// When a result must have come: at `cancel_at` the statement is cancelled
// (it outlived its statement_timeout: a function may have changed it), at
// `give_up_at` the connection is presumed lost (nothing came back, not even
// the cancel's error: a host or a network that vanished without a reset).
struct result_bounds {
  clock_type::time_point cancel_at;
  clock_type::time_point give_up_at;
  bool cancelled_for_timeout = false; // set once cancel_at passed
  bool gave_up = false;               // set when give_up_at passed
};

// Blocks until the connection's socket is readable. While the token has
// fired, or the statement outlived `b.cancel_at`, cancel requests go out
// meanwhile. False when the socket is unusable or `b.give_up_at` passed.
bool wait_readable(PGconn* c, canceller& cx, const cancel_token* token, result_bounds& b) {
  int sock = PQsocket(c);
  if (sock < 0)
    return false;
  auto ms_until = [](clock_type::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - clock_type::now()).count();
    return ms < 0 ? 0 : ms > 60000 ? 60000 : static_cast<int>(ms) + 1;
  };
  for (;;) {
    auto now = clock_type::now();
    if (now >= b.give_up_at) {
      b.gave_up = true;
      return false;
    }
    if (now >= b.cancel_at)
      b.cancelled_for_timeout = true;
    pollfd fds[2];
    nfds_t n = 0;
    fds[n++] = pollfd{sock, POLLIN, 0};
    int timeout = b.cancelled_for_timeout ? ms_until(b.give_up_at) : ms_until(b.cancel_at);
    bool cancelling = b.cancelled_for_timeout || (token != nullptr && token->cancelled());
    if (cancelling)
      timeout = std::min(timeout, cx.tick());
    else if (token != nullptr && token->wake_fd() >= 0)
      fds[n++] = pollfd{token->wake_fd(), POLLIN, 0};
    else if (token != nullptr)
      timeout = std::min(timeout, static_cast<int>(cancel_resend_interval.count()));
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
  bool timed_out = false;            // cancelled by batchq past its bound
};

exchange lost_exchange(PGconn* c, exchange ex, const char* fallback) {
  ex.lost = true;
  if (ex.error && ex.error->fatal && !ex.error->err.message.empty()) {
    ex.lost_reason = ex.error->err.message;
  } else {
    const char* m = PQerrorMessage(c);
    ex.lost_reason = (m != nullptr && *m != '\0') ? first_line_without_severity(m) : fallback;
  }
  return ex;
}

// Sends `sql` (with `params` via the extended protocol when given). False
// when it could not be sent.
bool send_statement(PGconn* c, const std::string& sql, const std::vector<std::string>* params) {
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
  if (sent != 0)
    metrics::global().postgres_round_trips.fetch_add(1, std::memory_order_relaxed);
  return sent != 0;
}

std::vector<job::result_column> columns_of(const PGresult* r) {
  std::vector<job::result_column> out;
  int n = PQnfields(r);
  out.reserve(static_cast<size_t>(n));
  for (int c = 0; c < n; ++c) {
    auto oid = static_cast<uint32_t>(PQftype(r, c));
    out.push_back({PQfname(r, c), oid, std::string{job::builtin_type_name(oid)}});
  }
  return out;
}

job::result_row row_of(const PGresult* r, int i) {
  job::result_row out;
  int n = PQnfields(r);
  out.reserve(static_cast<size_t>(n));
  for (int c = 0; c < n; ++c) {
    if (PQgetisnull(r, i, c))
      out.emplace_back(std::nullopt);
    else
      out.emplace_back(std::string{PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c))});
  }
  return out;
}

// Passes everything on to the job's sink and notes the column types that
// have no built-in name, for one pg_type lookup after the statement.
struct naming_sink : pg::row_sink {
  pg::row_sink* next = nullptr;
  std::set<uint32_t> unnamed;

  void begin_result(std::vector<job::result_column> columns) override {
    for (const auto& c : columns)
      if (c.type_name.empty())
        unnamed.insert(c.type_oid);
    next->begin_result(std::move(columns));
  }
  void row(job::result_row r) override { next->row(std::move(r)); }
};

// "oid name,oid name,..." (the lookup's string_agg) as a map.
std::map<uint32_t, std::string> parse_type_names(const std::string& text) {
  std::map<uint32_t, std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    auto end = text.find(',', i);
    if (end == std::string::npos)
      end = text.size();
    auto item = text.substr(i, end - i);
    auto sp = item.find(' ');
    if (sp != std::string::npos)
      out[static_cast<uint32_t>(std::strtoul(item.c_str(), nullptr, 10))] = item.substr(sp + 1);
    i = end + 1;
  }
  return out;
}

// Hands one PGresult's rows to a row_sink: a statement's result starts with
// its first row (single-row mode) or with its whole result (none, or the
// rows when single-row mode could not be set); a statement without rows
// starts (and ends) an empty one.
struct sink_feed {
  pg::row_sink* sink = nullptr;
  bool in_result = false;

  void take(const PGresult* r) {
    if (sink == nullptr)
      return;
    switch (PQresultStatus(r)) {
      case PGRES_SINGLE_TUPLE:
        if (!in_result) {
          sink->begin_result(columns_of(r));
          in_result = true;
        }
        sink->row(row_of(r, 0));
        break;
      case PGRES_TUPLES_OK: // the end of a statement's rows
        if (!in_result)
          sink->begin_result(columns_of(r));
        for (int i = 0; i < PQntuples(r); ++i)
          sink->row(row_of(r, i));
        in_result = false;
        break;
      case PGRES_COMMAND_OK:
      case PGRES_COPY_OUT:
        sink->begin_result({});
        in_result = false;
        break;
      default:
        break;
    }
  }
};

// Reads every result of the statement string sent last. Never throws.
exchange read_results(PGconn* c, const std::shared_ptr<cancel_flight>& flight,
                      const cancel_token* token, result_bounds bounds, bool want_value,
                      std::chrono::milliseconds grace, pg::row_sink* sink = nullptr) {
  sink_feed feed{sink};
  exchange ex;
  canceller cx{c, flight};
  auto lose = [&](const char* fallback) {
    if (bounds.gave_up) {
      ex.lost = true;
      ex.lost_reason = "no answer from the database server in time (the connection is "
                       "presumed lost)";
      return ex;
    }
    return lost_exchange(c, std::move(ex), fallback);
  };
  bool value_seen = false;
  for (;;) {
    while (PQisBusy(c)) {
      if (!wait_readable(c, cx, token, bounds) || PQconsumeInput(c) == 0)
        return lose("server closed the connection unexpectedly");
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr)
      break;
    feed.take(r);
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
            if (!wait_readable(c, cx, token, bounds) || PQconsumeInput(c) == 0) {
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
  if (!flight->wait_idle(grace)) {
    ex.lost = true;
    ex.lost_reason = "a cancel request to the database server did not complete";
    return ex;
  }
  ex.timed_out = bounds.cancelled_for_timeout;
  return ex;
}

// Bounds for a statement under `timeout_ms` (0: none, then only the grace).
result_bounds bounds_for(int64_t timeout_ms, std::chrono::milliseconds grace) {
  auto now = clock_type::now();
  result_bounds b;
  // A statement_timeout of 24.8 days is "forever" for a poll: cap the sum.
  auto t = std::chrono::milliseconds{std::min<int64_t>(timeout_ms, int64_t{1} << 40)};
  const clock_type::time_point never{clock_type::duration::max() / 2};
  b.cancel_at = timeout_ms > 0 ? now + t + grace : never;
  b.give_up_at = timeout_ms > 0 ? b.cancel_at + grace : never;
  return b;
}

// Bounds for batchq's own short statements (SET, the reset, lookups).
result_bounds internal_bounds(std::chrono::milliseconds grace) {
  return bounds_for(1, grace);
}

// What every pooled connection is reset to between jobs (docs/postgres.md,
// "Clean sessions"): DISCARD ALL without DISCARD ALL, which cannot run in the
// implicit transaction of a multi-statement string. One round trip, sent
// when the connection goes back to the pool and read when it is taken again.
constexpr const char* reset_sql =
  "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
  "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD SEQUENCES; DISCARD TEMP";

// How the rows of a statement are read.
enum class rows_mode {
  /// Each result whole (batchq's own statements: a row or none).
  whole,
  /// One row at a time (a job's statements): libpq never holds more than one
  /// row of any of the string's results, however many the statement returns.
  single,
};

// Sends `sql` and reads every result. Never throws.
exchange round_trip(PGconn* c, const std::shared_ptr<cancel_flight>& flight,
                    const std::string& sql, const std::vector<std::string>* params,
                    const cancel_token* token, bool want_value, result_bounds bounds,
                    std::chrono::milliseconds grace, rows_mode mode = rows_mode::whole,
                    pg::row_sink* sink = nullptr) {
  if (!send_statement(c, sql, params))
    return lost_exchange(c, exchange{}, "could not send the statement");
  // Cannot fail right after a successful send (the only time it may be set);
  // the statement then still runs, its rows read whole.
  if (mode == rows_mode::single)
    PQsetSingleRowMode(c);
  return read_results(c, flight, token, bounds, want_value, grace, sink);
}

// libpq hands an error the server sends outside any statement to the notice
// receiver: on an idle connection that is the server's last word before it
// closes it (`FATAL: terminating connection ...`). It can reach libpq's
// buffer in the same read as a reset's answers, before the EOF, and then the
// socket is quiet while the connection is dead; the flag remembers it.
struct notice_hook {
  bool fatal_seen = false;
};

// libpq's default receiver, the one every connection starts with (it ignores
// its argument and passes the text on to the processor libpqxx installs).
std::atomic<PQnoticeReceiver> default_receiver{nullptr};

void on_notice(void* arg, const PGresult* res) {
  // libpq's own notices (severity NOTICE) can come from a PGresult that
  // outlives its connection: `arg` is only touched for the server's FATAL or
  // PANIC, which only arrive while the connection is open.
  const char* sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev != nullptr && (std::strcmp(sev, "FATAL") == 0 || std::strcmp(sev, "PANIC") == 0)) {
    static_cast<notice_hook*>(arg)->fatal_seen = true;
    return;
  }
  if (auto next = default_receiver.load(std::memory_order_relaxed); next != nullptr)
    next(nullptr, res);
}

} // namespace

struct session::impl {
  explicit impl(const std::string& conninfo) : conn(conninfo) {
    if (auto* c = conn.raw(); c != nullptr) {
      auto previous = PQsetNoticeReceiver(c, &on_notice, &hook);
      if (previous != &on_notice)
        default_receiver.store(previous, std::memory_order_relaxed);
    }
  }
  pqxx_connection conn;
  notice_hook hook;
  std::shared_ptr<cancel_flight> flight = std::make_shared<cancel_flight>();
};

session::session(std::unique_ptr<impl> p, session_options opts)
  : impl_(std::move(p)), opts_(opts) {
  // nop
}

session::~session() = default;

caf::expected<std::unique_ptr<session>> session::connect(const std::string& conninfo,
                                                         session_options opts) {
  std::string reason;
  try {
    auto p = std::make_unique<impl>(conninfo);
    if (p->conn.raw() == nullptr || PQstatus(p->conn.raw()) != CONNECTION_OK) {
      reason = "connection not established";
    } else {
      std::unique_ptr<session> s{new session(std::move(p), opts)};
      if (auto r = s->apply_defaults(); !r)
        return std::move(r.error());
      return s;
    }
  } catch (const pqxx::broken_connection& e) {
    reason = connect_failure_reason(e.what());
  } catch (const std::bad_alloc&) {
    reason = "out of memory";
  } catch (const std::exception& e) {
    reason = connect_failure_reason(e.what());
  }
  return make_error(ec::pg_connect_failed, "cannot connect to the database: " + reason);
}

std::string session::defaults_sql() const {
  // PostgreSQL 14+: the server checks, while a statement runs, that the
  // client is still there, and stops the statement when it is not.
  auto* c = impl_->conn.raw();
  if (opts_.client_check_interval.count() > 0 && c != nullptr && PQserverVersion(c) >= 140000)
    return "SET client_connection_check_interval = "
           + std::to_string(opts_.client_check_interval.count());
  return {};
}

caf::expected<void> session::apply_defaults() {
  auto sql = defaults_sql();
  if (sql.empty())
    return {};
  ++round_trips_;
  auto ex = round_trip(impl_->conn.raw(), impl_->flight, sql, nullptr, nullptr, false,
                       internal_bounds(opts_.result_grace), opts_.result_grace);
  if (ex.lost) {
    broken_ = true;
    return make_error(ec::pg_connect_failed, "cannot connect to the database: " + ex.lost_reason);
  }
  if (ex.error)
    return make_error(ec::pg_connect_failed,
                      "cannot connect to the database: " + ex.error->err.message);
  return {};
}

void session::begin_reset() noexcept {
  auto* c = impl_->conn.raw();
  if (broken_ || reset_pending_ || c == nullptr || PQtransactionStatus(c) != PQTRANS_IDLE) {
    broken_ = true;
    return;
  }
  // RESET ALL resets statement_timeout too: set it back to what this session
  // last set, in the same round trip, so the next job with the same cap
  // needs no SET of its own.
  try {
    std::string sql = reset_sql;
    auto defaults = defaults_sql();
    if (!defaults.empty())
      sql += "; " + defaults;
    if (timeout_ms_)
      sql += "; SET statement_timeout = " + std::to_string(*timeout_ms_);
    ++round_trips_;
    if (!send_statement(c, sql, nullptr)) {
      broken_ = true;
      return;
    }
    reset_pending_ = true;
  } catch (...) {
    broken_ = true;
  }
}

bool session::finish_reset() noexcept {
  if (!reset_pending_)
    return !broken_;
  reset_pending_ = false;
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr) {
    broken_ = true;
    return false;
  }
  try {
    auto ex = read_results(c, impl_->flight, nullptr, internal_bounds(opts_.result_grace), false,
                           opts_.result_grace);
    if (ex.lost || ex.error || PQtransactionStatus(c) != PQTRANS_IDLE) {
      broken_ = true;
      timeout_ms_.reset();
      return false;
    }
  } catch (...) {
    broken_ = true;
    return false;
  }
  return true;
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
  if (reset_pending_ && !finish_reset())
    return false;
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr || PQstatus(c) != CONNECTION_OK
      || PQtransactionStatus(c) != PQTRANS_IDLE)
    return false;
  // Parse what libpq holds already (a termination notice read with the
  // reset's answers), then look at the socket for what it does not.
  PQisBusy(c);

  if (impl_->hook.fatal_seen) {
    broken_ = true;
    return false;
  }
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
                                                 int64_t timeout_ms, const cancel_token* token,
                                                 bool standard_strings, row_sink* rows) {
  if (reset_pending_ && !finish_reset())
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: the session could not be reset");
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
  if (timeout_ms < 0)
    timeout_ms = 0;
  if (timeout_ms > max_statement_timeout_ms)
    timeout_ms = max_statement_timeout_ms;
  // 1. statement_timeout only when it changes, standard_conforming_strings
  // only when a templated fallback finds it off: one round trip for both.
  std::string setup;
  bool forget_timeout_after = false;
  if (timeout_ms_ != timeout_ms)
    setup = "SET statement_timeout = " + std::to_string(timeout_ms);
  if (standard_strings) {
    const char* scs = PQparameterStatus(c, "standard_conforming_strings");
    if (scs == nullptr || std::string_view{scs} != "on")
      setup += std::string{setup.empty() ? "" : "; "} + "SET standard_conforming_strings = on";
  }
  if (!setup.empty()) {
    // A SET inside a transaction block is undone by a later ROLLBACK.
    forget_timeout_after = PQtransactionStatus(c) != PQTRANS_IDLE;
    timeout_ms_.reset();
    ++round_trips_;
    auto ex = round_trip(c, impl_->flight, prefix + setup, nullptr, token, false,
                         internal_bounds(opts_.result_grace), opts_.result_grace);
    if (ex.lost)
      return lost(ex);
    if (ex.error) {
      if (token != nullptr && token->cancelled())
        return cancelled_before_sending();
      res.what = outcome::failed;
      res.error = std::move(ex.error->err);
      return res;
    }
    timeout_ms_ = timeout_ms; // forgotten again below if inside a transaction block
  }
  // 2. A cancel (or the lease deadline) that came while setting the timeout
  // still wins.
  if (token != nullptr && token->stop_requested())
    return cancelled_before_sending();
  // 3. The statement itself, bounded on this side too: past its timeout plus
  // the grace it is cancelled (its own SET may have lifted the server's
  // timeout), past another grace the connection is given up.
  ++round_trips_;
  std::string text;
  text.reserve(prefix.size() + sql.size());
  text += prefix;
  text += sql;
  naming_sink naming;
  naming.next = rows;
  auto ex = round_trip(c, impl_->flight, text, nullptr, token, false,
                       bounds_for(timeout_ms, opts_.result_grace), opts_.result_grace,
                       rows_mode::single, rows != nullptr ? &naming : nullptr);
  if (ex.lost)
    return lost(ex);
  if (forget_timeout_after || may_change_timeout(sql))
    timeout_ms_.reset();
  if (ex.error) {
    res.error = std::move(ex.error->err);
    // A cancel is 57014 (query_canceled) with this job's own token fired, never
    // a message text: any other error stands, even if the token fired meanwhile.
    res.what = (token != nullptr && token->cancelled() && res.error.sqlstate == "57014")
                 ? outcome::cancelled
                 : outcome::failed;
    if (ex.timed_out && res.what == outcome::failed && res.error.sqlstate == "57014")
      res.error.message = "canceling statement due to statement timeout (" + std::to_string(timeout_ms)
                          + " ms, enforced by batchq)";
  } else if (!naming.unnamed.empty()) {
    // Names of types the built-in table lacks (user-defined, extensions').
    // pg_type is readable by every role; an aborted transaction block left by
    // the job makes the lookup fail, and the names stay empty.
    std::string oids = "{";
    for (auto oid : naming.unnamed)
      oids += (oids.size() > 1 ? "," : "") + std::to_string(oid);
    oids += "}";
    auto names = query_value("SELECT string_agg(oid::text || ' ' || typname::text, ',') "
                             "FROM pg_type WHERE oid = ANY($1::oid[])",
                             {oids});
    if (names && *names)
      rows->type_names(parse_type_names(**names));
  }
  return res;
}

caf::expected<std::optional<std::string>>
session::query_value(std::string_view sql, const std::vector<std::string>& params) {
  if (reset_pending_ && !finish_reset())
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: the session could not be reset");
  auto* c = impl_->conn.raw();
  if (broken_ || c == nullptr) {
    broken_ = true;
    return make_error(ec::pg_connection_lost,
                      "connection to the database was lost: the connection is broken");
  }
  ++round_trips_;
  auto ex = round_trip(c, impl_->flight, std::string{sql}, &params, nullptr, true,
                       internal_bounds(opts_.result_grace), opts_.result_grace);
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
