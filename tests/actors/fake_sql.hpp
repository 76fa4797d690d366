// FAKE ports::sql_connector / ports::sql_session for deterministic actor
// tests (no PostgreSQL). Sessions record every statement they "send" and
// answer a scripted outcome per SQL text (default: success), immediately: on
// the test coordinator nothing blocks.
//
// Like pg::session, an execute whose token has already fired sends (and
// records) nothing and answers `cancelled` with sent = false. A scripted
// `during` hook runs inside execute after the statement was recorded (e.g. to
// fire the cancel registry "while the statement runs"); if the token has fired
// by then, the answer is `cancelled` (sent = true, 57014 "canceling statement
// due to user request"), as a real cancel would end it.
//
// Thread-safety: none (the test coordinator runs everything on one thread).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "messages/error.hpp"
#include "src/ports/ports.hpp"

namespace batchq::test {

/// What the fake answers for one SQL text.
struct fake_answer {
  pg::outcome what = pg::outcome::succeeded;
  pg::statement_error error;
  /// Answer ec::pg_connection_lost instead (the session is then broken).
  bool connection_lost = false;
  /// Runs inside execute, after the statement was recorded.
  std::function<void()> during;
  /// The result handed to a row_sink (none: nothing is handed over).
  std::optional<std::vector<job::result_column>> columns;
  std::vector<job::result_row> rows;

  static fake_answer fail(std::string sqlstate, std::string message) {
    fake_answer a;
    a.what = pg::outcome::failed;
    a.error = pg::statement_error{std::move(sqlstate), std::move(message)};
    return a;
  }
  static fake_answer lost() {
    fake_answer a;
    a.connection_lost = true;
    return a;
  }
  static fake_answer hook(std::function<void()> f) {
    fake_answer a;
    a.during = std::move(f);
    return a;
  }
};

/// Everything the fake saw; shared by the connector and its sessions.
struct fake_sql_script {
  struct executed {
    std::string job_id;
    std::string sql;
    int64_t timeout_ms = 0;
    bool standard_strings = false;
    /// A row_sink was given (the step keeps its rows).
    bool kept = false;
  };
  struct connected {
    pg::pool_key key;
    std::string password;
  };

  std::map<std::string, fake_answer> answers;
  /// When set, connect fails with it.
  std::optional<caf::error> connect_error;

  std::vector<executed> statements;
  std::vector<connected> connects;
  /// execute calls that sent nothing (the token had fired).
  int unsent = 0;

  std::vector<std::string> sqls() const {
    std::vector<std::string> out;
    for (const auto& e : statements)
      out.push_back(e.sql);
    return out;
  }
};

class fake_sql_session : public ports::sql_session {
public:
  explicit fake_sql_session(std::shared_ptr<fake_sql_script> s) : script_(std::move(s)) {}

  caf::expected<pg::statement_result> execute(const std::string& job_id, const std::string& sql,
                                              int64_t timeout_ms, const pg::cancel_token* token,
                                              bool standard_strings,
                                              pg::row_sink* rows) override {
    if (token != nullptr && token->stop_requested()) {
      ++script_->unsent;
      pg::statement_result r;
      r.what = pg::outcome::cancelled;
      r.sent = false;
      return r;
    }
    script_->statements.push_back({job_id, sql, timeout_ms, standard_strings, rows != nullptr});
    fake_answer a;
    if (auto i = script_->answers.find(sql); i != script_->answers.end())
      a = i->second;
    if (rows != nullptr && a.columns) {
      rows->begin_result(*a.columns);
      for (const auto& row : a.rows)
        rows->row(row);
    }
    if (a.during)
      a.during();
    if (a.connection_lost)
      return make_error(ec::pg_connection_lost, "connection to the database was lost: fake");
    pg::statement_result r;
    if (token != nullptr && token->stop_requested()) {
      r.what = pg::outcome::cancelled;
      r.error = {"57014", "canceling statement due to user request"};
      return r;
    }
    r.what = a.what;
    r.error = a.error;
    return r;
  }

private:
  std::shared_ptr<fake_sql_script> script_;
};

class fake_sql_connector : public ports::sql_connector {
public:
  std::shared_ptr<fake_sql_script> script = std::make_shared<fake_sql_script>();

  caf::expected<std::unique_ptr<ports::sql_session>> connect(const pg::pool_key& key,
                                                             const std::string& password) override {
    script->connects.push_back({key, password});
    if (script->connect_error)
      return *script->connect_error;
    return std::unique_ptr<ports::sql_session>{new fake_sql_session(script)};
  }
};

} // namespace batchq::test
