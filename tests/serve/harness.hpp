// Process-level test harness for tests/serve/: runs the real `batchq` binary
// (its path comes from the BATCHQ_BINARY compile definition) against the test
// Redis and PostgreSQL of scripts/test, and writes/reads jobs the way CARTO's
// API and batchq's own code do.
//
//  - `serve_node`: `batchq serve --worker-only` pointed at the test servers
//    (Redis DB `batch_db`, its own cluster.node-id), stdout+stderr captured to
//    a file shown when a test fails; stopped with SIGTERM (killed with SIGKILL
//    if it outlives the test).
//  - `run_batchq`: runs a short command (`batchq cancel --direct ...`, `--help`) and
//    returns its exit code and output.
//  - `store`: Redis helpers (users, CARTO-format and batchq-format jobs, job
//    hashes, bounded waits polling every 20 ms) that delete every key they
//    created.
//  - `sql`: one libpqxx connection to the test cluster's `postgres` database.
// Child processes, waits and temporary files come from tests/support/process.hpp.
//
// The tests of one executable share Redis DB `batch_db` (no other suite uses
// it) and ctest runs them one at a time (RESOURCE_LOCK in CMakeLists.txt):
// every node started here serves every user of that DB, so two tests' nodes
// running at once would take each other's jobs.
//
// Thread safety: none; one test thread.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "messages/error.hpp"
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_env.hpp"

namespace batchq::test::serve {

using namespace std::chrono_literals;

/// Redis DB of the job keys for every node and helper in this executable.
inline constexpr int batch_db = 13;
/// Redis DB of `rails:users`, `api_keys` (SPEC §4: the metadata DB is 5).
inline constexpr int meta_db = 5;
/// Redis DB of `limits:batch:{user}` (the metadata DB, as CARTO reads it).
inline constexpr int limits_db = meta_db;

/// The flags pointing any batchq command at the test Redis (DB batch_db).
inline std::vector<std::string> redis_flags() {
  return {"--redis.host=127.0.0.1", "--redis.port=" + std::to_string(redis_port()),
          "--redis.db=" + std::to_string(batch_db)};
}

struct command_result {
  std::optional<int> exit_code; // nullopt: still running at the timeout (then killed)
  std::string output;           // stdout + stderr
  std::chrono::milliseconds elapsed{0};
};

/// Runs `batchq <args...>` to completion (bounded by `timeout`).
inline command_result run_batchq(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout = 30s) {
  std::vector<std::string> argv{batchq_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  run_options opts;
  opts.merge_stderr = true;
  opts.timeout = timeout;
  auto r = run_to_end(argv, opts);
  return {r.exit_code, std::move(r.out), r.elapsed};
}

/// `batchq serve --worker-only` on the test servers.
class serve_node {
public:
  /// Starts a node with a fresh node id; `extra` flags come last (they win).
  explicit serve_node(std::vector<std::string> extra = {}) : id_(unique_name("node")) {
    std::vector<std::string> argv{batchq_binary(), "serve", "--worker-only"};
    for (auto& f : redis_flags())
      argv.push_back(f);
    argv.push_back("--postgres.port=" + std::to_string(pg_port()));
    argv.push_back("--cluster.node-id=" + id_);
    // Every node serves HTTP (--worker-only: the probes): a free port each.
    argv.push_back("--http.port=0");
    argv.push_back("--batch.rescan-interval=3600");
    argv.push_back("--batch.sweep-interval=3600");
    for (auto& f : extra)
      argv.push_back(f);
    started_ = proc_.start(argv, temp_path("batchq_serve"));
  }

  /// A node still running is stopped with SIGTERM and must exit 0 (see
  /// stop_serve_node).
  ~serve_node() { stop_serve_node(proc_, id_); }

  /// Waits until the node registered `batch:nodes:{id}` (it does so once its
  /// subscriber is listening). False when it exited or the time ran out.
  bool wait_ready(redis::client& rc, std::chrono::milliseconds timeout = 20s) {
    if (!started_)
      return false;
    return wait_until(
      [&] {
        if (!proc_.running())
          return true;
        auto r = rc.command({"EXISTS", redis::keys::node(id_)});
        return r && r->integer == 1;
      },
      timeout) && proc_.running();
  }

  /// SIGTERM, then the exit status within `timeout`.
  std::optional<int> stop(std::chrono::milliseconds timeout = 30s) {
    proc_.signal(SIGTERM);
    return proc_.wait_exit(timeout);
  }

  const std::string& id() const { return id_; }
  child& process() { return proc_; }
  std::string log() const { return proc_.output(); }

private:
  std::string id_;
  child proc_;
  bool started_ = false;
};

/// A job written straight into Redis.
struct carto_job {
  std::string user;
  /// The `query` field as CARTO stores it: the SQL string, or JSON text.
  std::string query;
  std::vector<std::pair<std::string, std::string>> extra; // e.g. fallback_status
};

/// Redis helpers. Every key created is deleted at destruction.
class store {
public:
  store()
    : batch_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), batch_db}),
      meta_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), meta_db}),
      limits_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), limits_db}) {
  }

  ~store() {
    for (const auto& u : users_) {
      batch_.command({"DEL", redis::keys::queue(u), redis::keys::wip_user(u),
                      redis::keys::lock_user(u), redis::keys::user_jobs(u)});
      batch_.command({"SREM", std::string{redis::keys::queue_index}, u});
      batch_.command({"SREM", std::string{redis::keys::wip_users}, u});
      meta_.command({"DEL", redis::keys::rails_user(u), redis::keys::api_key(u, tokens_[u])});
      limits_.command({"DEL", redis::keys::limits_batch(u)});
    }
    for (const auto& id : jobs_)
      batch_.command({"DEL", redis::keys::job(id)});
  }

  redis::client& batch() { return batch_; }

  /// A user whose master key's role is `postgres` with an empty password
  /// (the test cluster uses trust auth) and whose database is the test one.
  std::string create_user(const std::string& prefix = "u") {
    auto user = unique_name(prefix);
    auto token = redis::random_token();
    users_.push_back(user);
    tokens_[user] = token;
    auto a = meta_.command({"HSET", redis::keys::rails_user(user), "id", "1", "database_host",
                            "127.0.0.1", "database_name", "postgres", "database_port",
                            std::to_string(pg_port()), "map_key", token});
    EXPECT_TRUE(a) << message_of(a.error());
    auto b = meta_.command({"HSET", redis::keys::api_key(user, token), "user", user, "type",
                            "master", "grants_sql", "true", "database_role", "postgres",
                            "database_password", ""});
    EXPECT_TRUE(b) << message_of(b.error());
    return user;
  }

  /// The command list of CARTO's enqueue of one job, without the PUBLISH:
  /// HSET batch:jobs:{id} ... + LPUSH batch:queue:{user} + SADD batch:indexes:queue.
  std::vector<std::vector<std::string>> carto_commands(const carto_job& j, std::string& id_out) {
    id_out = redis::random_token();
    jobs_.push_back(id_out);
    auto now = redis::iso8601_now();
    std::vector<std::string> hset{"HSET",        redis::keys::job(id_out),
                                  "user",        j.user,
                                  "status",      "pending",
                                  "query",       j.query,
                                  "created_at",  now,
                                  "updated_at",  now,
                                  "host",        "127.0.0.1",
                                  "port",        std::to_string(pg_port()),
                                  "dbname",      "postgres",
                                  "dbuser",      "postgres"};
    for (auto& [f, v] : j.extra) {
      hset.push_back(f);
      hset.push_back(v);
    }
    return {hset,
            {"LPUSH", redis::keys::queue(j.user), id_out},
            {"SADD", std::string{redis::keys::queue_index}, j.user}};
  }

  /// Enqueues one job exactly as CARTO's API does (hash, LPUSH, SADD, PUBLISH).
  std::string enqueue_carto(const carto_job& j, bool publish = true) {
    std::string id;
    auto cmds = carto_commands(j, id);
    if (publish)
      cmds.push_back({"PUBLISH", std::string{redis::keys::users_channel}, j.user});
    auto r = batch_.pipeline(cmds);
    EXPECT_TRUE(r) << message_of(r.error());
    if (r) {
      for (auto& x : *r)
        EXPECT_FALSE(x.is_error()) << x.str;
    }
    return id;
  }

  /// Enqueues a request body the way batchq's API does: src/job parse +
  /// make_job + encode, then redis::create_job (hash + queue + index + PUBLISH).
  std::string enqueue_batchq(const std::string& user, const std::string& body) {
    auto req = job::parse_request(body, "application/json", "");
    EXPECT_TRUE(req) << (req ? "" : req.error().message);
    if (!req)
      return {};
    auto id = redis::random_token();
    jobs_.push_back(id);
    job::db_target db{"127.0.0.1", std::to_string(pg_port()), "postgres", "postgres",
                      std::nullopt};
    auto j = job::make_job(*req, id, user, db, std::chrono::system_clock::now());
    auto rec = job::encode(j);
    auto created = redis::create_job(batch_, id, user, redis::field_list(rec.begin(), rec.end()),
                                     64);
    EXPECT_TRUE(created) << message_of(created.error());
    return id;
  }

  /// PUBLISHes every user in one pipeline (back to back).
  void publish_all(const std::vector<std::string>& users) {
    std::vector<std::vector<std::string>> cmds;
    for (auto& u : users)
      cmds.push_back({"PUBLISH", std::string{redis::keys::users_channel}, u});
    auto r = batch_.pipeline(cmds);
    EXPECT_TRUE(r) << message_of(r.error());
  }

  void set_timeout_limit(const std::string& user, int64_t ms) {
    auto r = limits_.command({"HSET", redis::keys::limits_batch(user), "timeout",
                              std::to_string(ms)});
    EXPECT_TRUE(r) << message_of(r.error());
  }

  redis::field_map job_hash(const std::string& id) {
    auto r = redis::read_job(batch_, id);
    if (!r || !*r)
      return {};
    return **r;
  }

  std::string status(const std::string& id) {
    auto r = batch_.command({"HGET", redis::keys::job(id), "status"});
    return r && r->is_string() ? r->str : std::string{};
  }

  /// Waits until the job's status is one of `want`; the last status seen on failure.
  ::testing::AssertionResult wait_status(const std::string& id, std::set<std::string> want,
                                         std::chrono::milliseconds timeout,
                                         std::chrono::milliseconds every = 20ms) {
    std::string last;
    bool ok = wait_until(
      [&] {
        last = status(id);
        return want.count(last) > 0;
      },
      timeout, every);
    if (ok)
      return ::testing::AssertionSuccess();
    std::string w;
    for (auto& s : want)
      w += (w.empty() ? "" : "|") + s;
    return ::testing::AssertionFailure() << "job " << id << " is '" << last << "' after "
                                         << timeout.count() << " ms, expected " << w;
  }

  /// LRANGE batch:queue:{user} 0 -1 (head = where LPUSH puts new ids; the
  /// next job to run is the LAST element, RPOP).
  std::vector<std::string> queue(const std::string& user) {
    std::vector<std::string> out;
    auto r = batch_.command({"LRANGE", redis::keys::queue(user), "0", "-1"});
    if (r)
      for (auto& e : r->elements)
        out.push_back(e.str);
    return out;
  }

  int64_t ttl(const std::string& key) {
    auto r = batch_.command({"TTL", key});
    return r ? r->integer : -3;
  }

  void forget_job(const std::string& id) { jobs_.push_back(id); }

private:
  redis::client batch_;
  redis::client meta_;
  redis::client limits_;
  std::vector<std::string> users_;
  std::map<std::string, std::string> tokens_;
  std::vector<std::string> jobs_;
};

/// One connection to the test cluster's `postgres` database.
class sql {
public:
  sql() : conn_(pg_conninfo()) {}

  pqxx::result exec(const std::string& q) {
    pqxx::nontransaction tx{conn_};
    return tx.exec(q);
  }

  /// A fresh log table (job text, started timestamptz, ended timestamptz),
  /// dropped at destruction.
  std::string log_table() {
    auto t = unique_name("serve_log");
    exec("CREATE TABLE " + t + " (job text, started timestamptz, ended timestamptz)");
    tables_.push_back(t);
    return t;
  }

  /// Whether a backend is running a statement tagged `/* <job_id> */` (whose
  /// text after the tag starts with `sql`, when given: the tag is also on the
  /// `SET statement_timeout` that may precede a statement).
  bool statement_active(const std::string& job_id, const std::string& sql = "") {
    auto r = exec("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                  + conn_.quote("/* " + job_id + " */ " + sql + "%"));
    return r[0][0].as<int>() > 0;
  }

  ~sql() {
    for (auto& t : tables_) {
      try {
        exec("DROP TABLE IF EXISTS " + t);
      } catch (...) {
      }
    }
  }

private:
  pqxx::connection conn_;
  std::vector<std::string> tables_;
};

/// Escapes `s` for a JSON string literal (the tests' SQL has no control chars).
inline std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    out += ch;
  }
  return out + "\"";
}

/// A CARTO JobMultiple `query` value: [{"query": q, "status": "pending"}, ...].
inline std::string carto_multiple(const std::vector<std::string>& queries) {
  std::string out = "[";
  for (size_t i = 0; i < queries.size(); ++i)
    out += (i ? "," : "") + std::string{"{\"query\":"} + json_str(queries[i])
           + ",\"status\":\"pending\"}";
  return out + "]";
}

} // namespace batchq::test::serve
