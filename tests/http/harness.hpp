// Process-level harness for tests/http/: the real `batchq serve` (full,
// --api-only or --worker-only) on a free loopback HTTP port, against the test
// Redis and PostgreSQL of scripts/test, driven with httplib::Client.
//
//  - `api_node`: a node on Redis DB `batch_db`, its own cluster.node-id and
//    HTTP port, output captured to a file shown when a test fails; stopped
//    with SIGTERM on destruction and expected to exit 0.
//  - `accounts`: users made with redis::add_user (master key, role
//    `postgres`, database `postgres` of the test cluster) plus extra key
//    records; deletes the users, their keys, their jobs (found through the
//    job index), queues and idempotency keys at the end.
//  - `call()`: one HTTP request, with the answer's status, headers and JSON.
// Child processes, waits and free ports come from tests/support/process.hpp;
// tests/serve/harness.hpp gives the SQL helper (serve::sql).
//
// Every node here serves every user of DB `batch_db`, so ctest runs these
// tests one at a time (RESOURCE_LOCK in CMakeLists.txt).
//
// Thread safety: none; one test thread.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "src/redis/users.hpp"
#include "tests/serve/harness.hpp"
#include "tests/support/process.hpp"

namespace batchq::test::http_api {

using namespace std::chrono_literals;
using nlohmann::json;

/// Redis DB of the job keys for every node and helper in this executable.
inline constexpr int batch_db = 14;

/// One HTTP answer.
struct answer {
  int status = 0; // 0: no answer (connection failed)
  httplib::Headers headers;
  std::string body;
  json doc; // the body as JSON (discarded when it is not JSON)

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
  }
  /// The first error message of an error body.
  std::string error() const {
    if (doc.is_object() && doc.contains("error") && doc["error"].is_array()
        && !doc["error"].empty() && doc["error"][0].is_string())
      return doc["error"][0].get<std::string>();
    return "<no error message in: " + body + ">";
  }
};

inline std::ostream& operator<<(std::ostream& out, const answer& a) {
  return out << "HTTP " << a.status << " " << a.body;
}

/// `batchq serve [--api-only|--worker-only]` on the test servers.
class api_node {
public:
  /// `mode`: "" (full), "--api-only" or "--worker-only". `extra` flags come
  /// last (they win), e.g. --redis.port=... for an unreachable Redis.
  explicit api_node(const std::string& mode = "", std::vector<std::string> extra = {})
    : id_(unique_name("http_node")), port_(free_port()) {
    std::vector<std::string> argv{batchq_binary(), "serve"};
    if (!mode.empty())
      argv.push_back(mode);
    argv.push_back("--redis.host=127.0.0.1");
    argv.push_back("--redis.port=" + std::to_string(redis_port()));
    argv.push_back("--redis.db=" + std::to_string(batch_db));
    argv.push_back("--postgres.port=" + std::to_string(pg_port()));
    argv.push_back("--cluster.node-id=" + id_);
    argv.push_back("--http.port=" + std::to_string(port_));
    argv.push_back("--batch.rescan-interval=3600");
    argv.push_back("--batch.sweep-interval=3600");
    for (auto& f : extra)
      argv.push_back(f);
    started_ = proc_.start(argv, temp_path("batchq_http_node"));
  }

  /// A node still running is stopped with SIGTERM and must exit 0 (see
  /// stop_serve_node).
  ~api_node() { stop_serve_node(proc_, id_); }

  /// Waits until `path` answers 200 (/ready: Redis answers and, with a
  /// worker, the subscriber listens). False when the node exited or the time
  /// ran out.
  bool wait_http(const std::string& path = "/ready", std::chrono::milliseconds timeout = 20s) {
    if (!started_)
      return false;
    bool ok = wait_until(
      [&] {
        if (!proc_.running())
          return true;
        httplib::Client c{"127.0.0.1", port_};
        c.set_connection_timeout(1);
        auto r = c.Get(path.c_str());
        return r && r->status == 200;
      },
      timeout, 50ms);
    return ok && proc_.running();
  }

  /// SIGTERM, then the exit status within `timeout`.
  std::optional<int> stop(std::chrono::milliseconds timeout = 30s) {
    proc_.signal(SIGTERM);
    return proc_.wait_exit(timeout);
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return proc_.pid(); }
  const std::string& id() const { return id_; }
  std::string log() const { return proc_.output(); }

private:
  std::string id_;
  uint16_t port_;
  child proc_;
  bool started_ = false;
};

/// One request to `node`. `headers` may set Host, Authorization, ...
inline answer call(const api_node& node, const std::string& method, const std::string& path,
                   const std::string& body = {}, const std::string& content_type = {},
                   const httplib::Headers& headers = {},
                   std::chrono::seconds read_timeout = 70s) {
  httplib::Client c{"127.0.0.1", node.port()};
  c.set_connection_timeout(5);
  c.set_read_timeout(read_timeout.count());
  httplib::Result r{nullptr, httplib::Error::Unknown};
  if (method == "GET")
    r = c.Get(path.c_str(), headers);
  else if (method == "DELETE")
    r = c.Delete(path.c_str(), headers, body, content_type.c_str());
  else if (method == "POST")
    r = c.Post(path.c_str(), headers, body, content_type.c_str());
  else if (method == "OPTIONS")
    r = c.Options(path.c_str(), headers);
  answer a;
  if (!r) {
    a.body = "no answer: " + httplib::to_string(r.error());
    return a;
  }
  a.status = r->status;
  a.headers = r->headers;
  a.body = r->body;
  a.doc = json::parse(a.body, nullptr, false);
  return a;
}

inline httplib::Headers bearer(const std::string& key) {
  return {{"Authorization", "Bearer " + key}};
}

/// Users and keys in the metadata DB, and the cleanup of their jobs.
class accounts {
public:
  accounts()
    : meta_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), redis::metadata_db}),
      batch_(redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), batch_db}) {
  }

  ~accounts() {
    for (const auto& u : users_) {
      auto ids = batch_.command({"ZRANGE", redis::keys::user_jobs(u), "0", "-1"});
      std::vector<std::string> del{"DEL",
                                   redis::keys::queue(u),
                                   redis::keys::wip_user(u),
                                   redis::keys::lock_user(u),
                                   redis::keys::user_jobs(u)};
      if (ids)
        for (const auto& m : ids->elements)
          del.push_back(redis::keys::job(m.str.substr(16)));
      for (const auto& id : extra_jobs_)
        del.push_back(redis::keys::job(id));
      auto idem = batch_.command(
        {"KEYS", redis::keys::escape_glob(redis::keys::idempotency(u, "")) + "*"});
      if (idem)
        for (const auto& k : idem->elements)
          del.push_back(k.str);
      batch_.command(del);
      batch_.command({"SREM", std::string{redis::keys::queue_index}, u});
      batch_.command({"SREM", std::string{redis::keys::wip_users}, u});
      redis::remove_user(meta_, u);
    }
  }

  /// A user of the test cluster's `postgres` database (role postgres, trust
  /// auth, empty password); returns the name, `key()` its master key.
  std::string create_user(const std::string& prefix = "hu") {
    redis::user_account a;
    a.user = unique_name(prefix);
    a.database_host = "127.0.0.1";
    a.database_name = "postgres";
    a.database_port = static_cast<uint16_t>(pg_port());
    a.database_role = "postgres";
    a.database_password = "";
    auto key = redis::add_user(meta_, a);
    EXPECT_TRUE(key) << message_of(key.error());
    users_.push_back(a.user);
    keys_[a.user] = key ? *key : std::string{};
    return a.user;
  }

  const std::string& key(const std::string& user) { return keys_[user]; }

  /// Another key record for `user` (type default|regular|master); returns its token.
  std::string add_key(const std::string& user, const std::string& type, bool grants_sql,
                      const std::string& role = "postgres") {
    auto token = redis::random_token();
    auto r = meta_.command({"HSET", redis::keys::api_key(user, token), "user", user, "type", type,
                            "grants_sql", grants_sql ? "true" : "false", "database_role", role,
                            "database_password", ""});
    EXPECT_TRUE(r) << message_of(r.error());
    return token;
  }

  redis::client& batch() { return batch_; }
  redis::client& meta() { return meta_; }

  redis::field_map job_hash(const std::string& id) {
    auto r = redis::read_job(batch_, id);
    return r && *r ? **r : redis::field_map{};
  }

  std::string status(const std::string& id) {
    auto r = batch_.command({"HGET", redis::keys::job(id), "status"});
    return r && r->is_string() ? r->str : std::string{};
  }

  int64_t llen(const std::string& key) {
    auto r = batch_.command({"LLEN", key});
    return r && r->is_integer() ? r->integer : -1;
  }

  void forget_job(const std::string& id) { extra_jobs_.push_back(id); }

private:
  redis::client meta_;
  redis::client batch_;
  std::vector<std::string> users_;
  std::map<std::string, std::string> keys_;
  std::vector<std::string> extra_jobs_;
};

/// The SQL of a JSON string literal.
inline std::string jstr(const std::string& s) {
  return json(s).dump();
}

} // namespace batchq::test::http_api
