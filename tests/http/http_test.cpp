// The HTTP API of the real `batchq serve` (SPEC §8), over HTTP, against the
// real Redis and PostgreSQL: the error table row by row, every credential
// form, every request shape running to `done`, waits, idempotency, lists,
// cancels, CORS, the three node modes and the probes. Harness: harness.hpp.
// Every wait is bounded and polls; nothing asserts on a fixed sleep.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/http/harness.hpp"

using namespace batchq;
using namespace batchq::test;
using namespace batchq::test::http_api;
using namespace std::chrono_literals;

namespace {

std::string jobs_path(const std::string& user, const std::string& version = "v2") {
  return "/user/" + user + "/api/" + version + "/sql/job";
}

std::string job_path(const std::string& user, const std::string& id) {
  return jobs_path(user) + "/" + id;
}

bool is_final(const std::string& s) {
  return s == "done" || s == "failed" || s == "cancelled" || s == "unknown";
}

int64_t ms_since(clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count();
}

/// The value of the sample line `name` (e.g. `batchq_jobs_created_total` or
/// `batchq_jobs_finished_total{status="done"}`) in a /metrics body; -1 if absent.
double sample(const std::string& metrics, const std::string& name) {
  std::istringstream in{metrics};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0)
      return std::stod(line.substr(name.size() + 1));
  return -1;
}

struct http_test : ::testing::Test {
  accounts acc;
  test::serve::sql db;

  // One sample of the node's /metrics.
  double scrape(const api_node& n, const std::string& name) {
    return sample(call(n, "GET", "/metrics").body, name);
  }

  std::unique_ptr<api_node> start(const std::string& mode = "",
                                  std::vector<std::string> extra = {}) {
    auto n = std::make_unique<api_node>(mode, std::move(extra));
    EXPECT_TRUE(n->wait_http()) << "node " << n->id() << " did not become ready";
    return n;
  }

  answer post(const api_node& n, const std::string& user, const std::string& body,
              const std::string& content_type = "application/json",
              httplib::Headers headers = {}) {
    if (headers.empty())
      headers = bearer(acc.key(user));
    return call(n, "POST", jobs_path(user), body, content_type, headers);
  }

  /// POSTs `body` and expects 201; returns the job id.
  std::string create(const api_node& n, const std::string& user, const std::string& body,
                     const std::string& content_type = "application/json") {
    auto a = post(n, user, body, content_type);
    EXPECT_EQ(a.status, 201) << a;
    if (a.status != 201 || !a.doc.is_object() || !a.doc.contains("job_id"))
      return {};
    return a.doc["job_id"].get<std::string>();
  }

  answer get(const api_node& n, const std::string& user, const std::string& id,
             const std::string& query = "") {
    return call(n, "GET", job_path(user, id) + query, "", "", bearer(acc.key(user)));
  }

  answer del(const api_node& n, const std::string& user, const std::string& id) {
    return call(n, "DELETE", job_path(user, id), "", "", bearer(acc.key(user)));
  }

  /// A `?wait=20` long-poll on its own thread; `finish(t)` joins it and
  /// returns its answer and how many ms after `t` it came.
  struct background_wait {
    answer result;
    clock::time_point answered;
    std::thread thread;
    std::pair<answer, int64_t> finish(clock::time_point t) {
      thread.join();
      return {result, std::chrono::duration_cast<std::chrono::milliseconds>(answered - t).count()};
    }
  };
  std::unique_ptr<background_wait> wait_in_background(const api_node& n, const std::string& user,
                                                      const std::string& id) {
    auto w = std::make_unique<background_wait>();
    w->thread = std::thread{[this, &n, user, id, raw = w.get()] {
      raw->result = get(n, user, id, "?wait=20");
      raw->answered = clock::now();
    }};
    return w;
  }

  /// Long-polls until the job is final (at most `timeout`); the last answer.
  answer wait_final(const api_node& n, const std::string& user, const std::string& id,
                    std::chrono::seconds timeout = 60s) {
    auto deadline = clock::now() + timeout;
    answer a;
    do {
      a = get(n, user, id, "?wait=10");
      if (a.status != 200 || is_final(a.doc.value("status", "")))
        return a;
    } while (clock::now() < deadline);
    return a;
  }

  /// Waits until the job's statement runs in PostgreSQL.
  bool wait_statement(const std::string& id) {
    return wait_until([&] { return db.statement_active(id); }, 20s);
  }
};

// -- the error table (SPEC §8), row by row --------------------------------------------

TEST_F(http_test, AnUnknownUserIsAnsweredFirstFromThePathOrTheHostHeader) {
  auto node = start("--api-only");
  auto nobody = unique_name("nobody");
  auto a = call(*node, "POST", jobs_path(nobody), R"({"query":"select 1"})", "application/json");
  EXPECT_EQ(a.status, 404) << a;
  EXPECT_EQ(a.error(), "Sorry, we can't find user '" + nobody + "'.");

  // No user in the path: the Host header `127.0.0.1:<port>` names user `127`.
  auto host = call(*node, "POST", "/api/v2/sql/job", R"({"query":"select 1"})",
                   "application/json");
  EXPECT_EQ(host.status, 404) << host;
  EXPECT_EQ(host.error(), "Sorry, we can't find user '127'.");

  // Checked before the payload size.
  auto big = call(*node, "POST", jobs_path(nobody), std::string(20000, 'x'), "text/plain");
  EXPECT_EQ(big.status, 404) << big;
  EXPECT_EQ(a.header("Content-Type"), "application/json; charset=utf-8");
}

TEST_F(http_test, TheHostSubdomainNamesTheUserWhenThePathDoesNot) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto headers = bearer(acc.key(user));
  headers.emplace("Host", user + ".batchq.test");
  auto a = call(*node, "POST", "/api/v2/sql/job", R"({"query":"select 1"})", "application/json",
                headers);
  ASSERT_EQ(a.status, 201) << a;
  EXPECT_EQ(a.doc["user"], user);
  auto id = a.doc["job_id"].get<std::string>();
  auto g = call(*node, "GET", "/api/v1/sql/job/" + id, "", "", headers);
  EXPECT_EQ(g.status, 200) << g;
  EXPECT_EQ(g.doc["job_id"], id);
}

TEST_F(http_test, ABodyOfExactlyMaxPayloadIsAcceptedAndOneByteMoreIs400BeforeAuth) {
  auto node = start("--api-only", {"--api.max-payload=1000"});
  auto user = acc.create_user();
  std::string head = R"({"query":"select ')";
  std::string tail = R"('"})";
  std::string body = head + std::string(1000 - head.size() - tail.size(), 'a') + tail;
  ASSERT_EQ(body.size(), 1000u);
  auto ok = post(*node, user, body);
  EXPECT_EQ(ok.status, 201) << ok;

  std::string over = head + std::string(1001 - head.size() - tail.size(), 'a') + tail;
  // No key at all: the size is checked before the credentials.
  auto a = call(*node, "POST", jobs_path(user), over, "application/json");
  EXPECT_EQ(a.status, 400) << a;
  EXPECT_EQ(a.error(), "Your payload is too large: 1001 bytes. Max size allowed is 1000 bytes.");

  // Far above (the transport's own limit is max(64 x max-payload, 1 MiB)): the same answer.
  std::string huge(1100000, 'q');
  auto h = call(*node, "POST", jobs_path(user), huge, "text/plain", bearer(acc.key(user)));
  EXPECT_EQ(h.status, 400) << h.status << " " << h.body.substr(0, 200);
  EXPECT_EQ(h.error(),
            "Your payload is too large: 1100000 bytes. Max size allowed is 1000 bytes.");
}

TEST_F(http_test, AFormBodyUpToMaxPayloadIsReadWholeAndTheSizeIsTheBodyAsReceived) {
  // httplib's server had a compiled-in limit of 8,192 bytes for form bodies;
  // the transport reads the body whole, so the SPEC's limit (16,384 by
  // default) is the one that holds.
  auto node = start("--api-only");
  auto user = acc.create_user();
  std::string body = "query=select+'" + std::string(16384 - 15, 'a') + "'";
  ASSERT_EQ(body.size(), 16384u);
  auto ok = post(*node, user, body, "application/x-www-form-urlencoded");
  ASSERT_EQ(ok.status, 201) << ok.status << " " << ok.body.substr(0, 200);
  EXPECT_EQ(ok.doc["query"].get<std::string>().size(), 16384u - 6);
  auto over = post(*node, user, body + "a", "application/x-www-form-urlencoded");
  EXPECT_EQ(over.status, 400);
  EXPECT_EQ(over.error(),
            "Your payload is too large: 16385 bytes. Max size allowed is 16384 bytes.");
  // 900 appended steps (the old parser took ~0.9 s of CPU for 1,800).
  std::string steps;
  for (int i = 0; i < 900; ++i)
    steps += (i ? "&query[]=" : "query[]=") + std::string("select+1");
  auto many = post(*node, user, steps, "application/x-www-form-urlencoded");
  EXPECT_EQ(many.status, 201) << many.status << " " << many.body.substr(0, 200);
  // A number beyond a double: 400, not 500.
  auto huge = post(*node, user, R"({"query": 1e999999})");
  EXPECT_EQ(huge.status, 400) << huge;
  EXPECT_EQ(huge.error(), "Invalid JSON body: number out of range: 1e999999");
}

TEST_F(http_test, NoKeyIs403AWrongKeyIs401AndNonMasterKeysAre403) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto body = R"({"query":"select 1"})";
  auto none = call(*node, "POST", jobs_path(user), body, "application/json");
  EXPECT_EQ(none.status, 403) << none;
  EXPECT_EQ(none.error(), "permission denied");

  auto wrong = post(*node, user, body, "application/json", bearer("not-a-key"));
  EXPECT_EQ(wrong.status, 401) << wrong;
  EXPECT_EQ(wrong.error(), "Unauthorized");

  // Another user's master key is no key of this user.
  auto other = acc.create_user();
  auto foreign = post(*node, user, body, "application/json", bearer(acc.key(other)));
  EXPECT_EQ(foreign.status, 401) << foreign;

  for (auto [type, sql] : {std::pair<const char*, bool>{"default", true}, {"regular", true},
                           {"regular", false}}) {
    auto key = acc.add_key(user, type, sql);
    auto a = post(*node, user, body, "application/json", bearer(key));
    EXPECT_EQ(a.status, 403) << type << " grants_sql=" << sql << ": " << a;
    EXPECT_EQ(a.error(), "permission denied");
  }
  // The same rules on the other job routes.
  auto g = call(*node, "GET", jobs_path(user), "", "", bearer("not-a-key"));
  EXPECT_EQ(g.status, 401) << g;
  auto w = call(*node, "GET", "/user/" + user + "/api/v1/jobs-wip", "", "");
  EXPECT_EQ(w.status, 403) << w;
}

TEST_F(http_test, RegularKeysWithGrantsSqlAreAcceptedOnlyWhenAllowed) {
  // CAF's command line takes a boolean as a bare flag (the INI file: `=true`).
  auto node = start("--api-only", {"--api.allow-regular-keys=true"});
  auto user = acc.create_user();
  auto regular = acc.add_key(user, "regular", true, "analyst_role");
  auto a = post(*node, user, R"({"query":"select 1"})", "application/json", bearer(regular));
  ASSERT_EQ(a.status, 201) << a;
  // The job runs as the key's role; no password is stored.
  auto h = acc.job_hash(a.doc["job_id"].get<std::string>());
  EXPECT_EQ(h["dbuser"], "analyst_role");
  EXPECT_EQ(h.count("pass"), 0u);
  // The runner finds that role's password through batchq's role index (one
  // read, no SCAN): the accepted key is named there.
  auto idx = acc.meta().command({"HGET", redis::keys::role_keys(user), "analyst_role"});
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->str, regular);

  auto no_sql = acc.add_key(user, "regular", false);
  EXPECT_EQ(post(*node, user, R"({"query":"select 1"})", "application/json", bearer(no_sql)).status,
            403);
  auto def = acc.add_key(user, "default", true);
  EXPECT_EQ(post(*node, user, R"({"query":"select 1"})", "application/json", bearer(def)).status,
            403);
}

TEST_F(http_test, EveryCredentialFormIsAccepted) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  const auto& key = acc.key(user);
  auto path = jobs_path(user);
  std::string json_body = R"({"query":"select 1"})";

  httplib::Client c{"127.0.0.1", node->port()};
  c.set_basic_auth(user, key);
  auto basic = c.Post(path, json_body, "application/json");
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 201) << basic->body;

  httplib::Client c2{"127.0.0.1", node->port()};
  c2.set_basic_auth("someone_else", key);
  auto foreign_basic = c2.Post(path, json_body, "application/json");
  ASSERT_TRUE(foreign_basic);
  EXPECT_EQ(foreign_basic->status, 403) << foreign_basic->body;

  EXPECT_EQ(call(*node, "POST", path, json_body, "application/json", bearer(key)).status, 201);
  EXPECT_EQ(call(*node, "POST", path + "?api_key=" + key, json_body, "application/json").status,
            201);
  EXPECT_EQ(call(*node, "POST", path + "?map_key=" + key, json_body, "application/json").status,
            201);
  EXPECT_EQ(call(*node, "POST", path,
                 R"({"query":"select 1","api_key":)" + jstr(key) + "}", "application/json")
              .status,
            201);
  EXPECT_EQ(call(*node, "POST", path, "query=select+1&map_key=" + key,
                 "application/x-www-form-urlencoded")
              .status,
            201);
  auto get = call(*node, "GET", path + "?api_key=" + key);
  EXPECT_EQ(get.status, 200) << get;
  EXPECT_EQ(get.doc["jobs"].size(), 6u) << get;
}

TEST_F(http_test, ValidationErrorsAre400WithTheSpecMessages) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  std::string many = R"({"query":[)";
  for (int i = 0; i < 1001; ++i)
    many += (i ? ",\"select 1\"" : "\"select 1\"");
  many += "]}";
  std::vector<std::pair<std::string, std::string>> cases{
    {R"({})", "You must indicate a valid SQL"},
    {R"({"query":""})", "You must indicate a valid SQL"},
    {R"({"query":[]})", "You must indicate a valid SQL"},
    {R"({"query":{"query":[]}})", "You must indicate a valid SQL"},
    {R"([1,2])", "You must indicate a valid SQL"},
    {R"({"query":5})", "there is no job class for the provided query"},
    {R"({"query":["select 1", 7]})", "there is no job class for the provided query"},
    {R"({"query":["select 1",{"query":"select 2","onerror":5}]})",
     "query[1].onerror must be a string"},
    {R"({"query":{"query":[{"query":"select 1","timeout":"x"}]}})",
     "query.query[0].timeout must be a number"},
    {many, "too many queries: 1001 (max 1000)"},
    {R"({"query": "select 1")", "Invalid JSON body: syntax error at byte 21"},
  };
  for (const auto& [body, message] : cases) {
    auto a = post(*node, user, body);
    EXPECT_EQ(a.status, 400) << body.substr(0, 80) << " -> " << a;
    EXPECT_EQ(a.error(), message) << body.substr(0, 80);
  }
  // Nothing was queued.
  EXPECT_EQ(acc.llen(redis::keys::queue(user)), 0);
}

TEST_F(http_test, AFullQueueIs400WithTheLimit) {
  auto node = start("--api-only", {"--batch.max-queued-jobs=2"});
  auto user = acc.create_user();
  create(*node, user, R"({"query":"select 1"})");
  create(*node, user, R"({"query":"select 2"})");
  auto a = post(*node, user, R"({"query":"select 3"})");
  EXPECT_EQ(a.status, 400) << a;
  EXPECT_EQ(a.error(), "Failed to create job. Max number of jobs (2) queued reached");
  EXPECT_EQ(acc.llen(redis::keys::queue(user)), 2);
}

TEST_F(http_test, AnotherUsersJobIsNotFoundOnGetAndDeleteAndStaysUntouched) {
  auto node = start("--api-only");
  auto owner = acc.create_user("owner");
  auto other = acc.create_user("other");
  auto id = create(*node, owner, R"({"query":"select 1"})");
  ASSERT_FALSE(id.empty());
  auto before = acc.job_hash(id);

  auto g = get(*node, other, id);
  EXPECT_EQ(g.status, 404) << g;
  EXPECT_EQ(g.error(), "Job with id " + id + " not found");
  auto d = del(*node, other, id);
  EXPECT_EQ(d.status, 404) << d;
  EXPECT_EQ(d.error(), "Job with id " + id + " not found");

  EXPECT_EQ(acc.job_hash(id), before) << "the foreign cancel changed the job";
  EXPECT_EQ(acc.llen(redis::keys::queue(owner)), 1);
  auto unknown = get(*node, owner, "no-such-job");
  EXPECT_EQ(unknown.status, 404) << unknown;
  EXPECT_EQ(unknown.error(), "Job with id no-such-job not found");
}

TEST_F(http_test, DeletingAPendingJobAnswersItCancelledAndLeavesTheQueue) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":["select 1","select 2"]})");
  auto d = del(*node, user, id);
  ASSERT_EQ(d.status, 200) << d;
  EXPECT_EQ(d.doc["status"], "cancelled");
  EXPECT_EQ(d.doc["query"][0]["status"], "skipped");
  EXPECT_EQ(acc.llen(redis::keys::queue(user)), 0);
  // Once final, another cancel is refused.
  auto again = del(*node, user, id);
  EXPECT_EQ(again.status, 400) << again;
  EXPECT_EQ(again.error(), "Cannot set status from cancelled to cancelled");
}

TEST_F(http_test, OneUsersLongPollsAndIdleConnectionsDoNotStopTheApiForOthers) {
  auto node = start("--api-only"); // no worker: jobs stay pending, waits last
  auto heavy = acc.create_user();
  auto other = acc.create_user();
  auto id = create(*node, heavy, R"({"query":"select 1"})");
  // 100 idle TCP connections that never send a request.
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(node->port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    idle.push_back(fd);
  }
  // 80 concurrent long-polls of one user: 16 wait, the rest are refused at once.
  std::vector<std::future<answer>> polls;
  for (int i = 0; i < 80; ++i)
    polls.push_back(std::async(std::launch::async,
                               [&] { return get(*node, heavy, id, "?wait=20"); }));
  // The 64 refusals come at once (past the 16 waits, or past 32 in flight).
  std::vector<bool> answered(polls.size(), false);
  int refused = 0;
  auto deadline = clock::now() + 15s;
  while (refused < 64 && clock::now() < deadline) {
    for (size_t i = 0; i < polls.size(); ++i)
      if (!answered[i] && polls[i].wait_for(0s) == std::future_status::ready) {
        answered[i] = true;
        auto a = polls[i].get();
        EXPECT_EQ(a.status, 429) << a;
        EXPECT_EQ(a.error().rfind("Too many ", 0), 0u) << a;
        ++refused;
      }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(refused, 64);
  // Everyone else is served at once: the probes, and another user's routes.
  auto t0 = clock::now();
  auto health = call(*node, "GET", "/health", "", "", {}, 5s);
  auto health_ms = ms_since(t0);
  EXPECT_EQ(health.status, 200) << health;
  t0 = clock::now();
  auto posted = post(*node, other, R"({"query":"select 2"})");
  auto post_ms = ms_since(t0);
  EXPECT_EQ(posted.status, 201) << posted;
  t0 = clock::now();
  auto read = get(*node, other, posted.doc.value("job_id", "x"));
  auto get_ms = ms_since(t0);
  EXPECT_EQ(read.status, 200) << read;
  EXPECT_EQ(call(*node, "GET", "/metrics").status, 200);
  std::cout << "[ measure  ] with 16 long-polls waiting, 64 refused and 100 idle connections: "
            << "/health " << health_ms << " ms, another user's POST " << post_ms << " ms, GET "
            << get_ms << " ms\n";
  EXPECT_LT(health_ms, 2000);
  EXPECT_LT(post_ms, 2000);
  EXPECT_LT(get_ms, 2000);
  // The same user may still read without waiting.
  EXPECT_EQ(get(*node, heavy, id).status, 200);
  for (int fd : idle)
    ::close(fd);
  node.reset(); // stopping wakes the 16 waits: they answer with the job as it is
  for (size_t i = 0; i < polls.size(); ++i)
    if (!answered[i]) {
      ASSERT_EQ(polls[i].wait_for(30s), std::future_status::ready);
      EXPECT_EQ(polls[i].get().status, 200);
    }
}

TEST_F(http_test, ParkedLongPollsHoldNoThreadWhileTheyWait) {
  // 20 users x 16 long-polls each (the per-user cap): 320 waiting requests.
  // With a thread per request (httplib's server) this held 320 threads; parked
  // on the transport they hold none, and everyone else is served at once.
  auto node = start("--api-only"); // no worker: jobs stay pending, waits last
  constexpr int users = 20;
  constexpr int per_user = 16;
  std::vector<std::future<answer>> polls;
  for (int u = 0; u < users; ++u) {
    auto user = acc.create_user();
    auto id = create(*node, user, R"({"query":"select 1"})");
    for (int i = 0; i < per_user; ++i)
      polls.push_back(std::async(std::launch::async,
                                 [this, &node, user, id] { return get(*node, user, id, "?wait=40"); }));
  }
  ASSERT_TRUE(wait_until(
    [&] { return scrape(*node, "batchq_http_parked") == users * per_user; }, 30s))
    << "parked: " << scrape(*node, "batchq_http_parked");
  // Looks (a safety read every 1.5-2.5 s per request) may be running at a
  // scrape: sampled ten times, the busy threads stay far below one per
  // request (a thread per request would show 320; quiet runs show 0).
  double busiest = 0;
  for (int i = 0; i < 10; ++i) {
    busiest = std::max(busiest, scrape(*node, "batchq_http_job_threads_busy"));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(busiest, users * per_user / 5) << "job-route threads busy while every request is parked";
  auto t0 = clock::now();
  auto health = call(*node, "GET", "/health", "", "", {}, 5s);
  auto health_ms = ms_since(t0);
  EXPECT_EQ(health.status, 200) << health;
  auto other = acc.create_user();
  t0 = clock::now();
  auto posted = post(*node, other, R"({"query":"select 2"})");
  auto post_ms = ms_since(t0);
  EXPECT_EQ(posted.status, 201) << posted;
  long threads = 0;
  {
    std::ifstream in{"/proc/" + std::to_string(node->pid()) + "/status"};
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("Threads:", 0) == 0)
        threads = std::stol(line.substr(8));
  }
  std::cout << "[ measure  ] " << users * per_user << " parked long-polls: node threads " << threads
            << ", job threads busy at most " << busiest << ", /health " << health_ms
            << " ms, another user's POST " << post_ms << " ms\n";
  EXPECT_LT(health_ms, 1000);
  EXPECT_LT(post_ms, 1000);
  // Stopping answers every parked request with the job as it is.
  node.reset();
  for (auto& p : polls) {
    ASSERT_EQ(p.wait_for(30s), std::future_status::ready);
    auto a = p.get();
    EXPECT_EQ(a.status, 200) << a;
    EXPECT_EQ(a.doc["status"], "pending") << a;
  }
}

/// Writes `bytes` on a new connection and reads until the server closes it (at
/// most 10 s).
std::string raw_exchange(uint16_t port, const std::string& bytes) {
  int fd = connect_loopback(port);
  if (fd < 0)
    return "connect failed";
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(http_test, MalformedRequestsAre4xxJsonAndTheConnectionCloses) {
  auto node = start("--api-only");
  auto bad = raw_exchange(node->port(), "NOT A REQUEST\r\n\r\n");
  EXPECT_EQ(bad.rfind("HTTP/1.1 400 ", 0), 0u) << bad;
  EXPECT_NE(bad.find(R"({"error":["Bad request: )"), std::string::npos) << bad;
  auto long_target = raw_exchange(node->port(), "GET /" + std::string(9000, 'a')
                                                  + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(long_target.rfind("HTTP/1.1 414 ", 0), 0u) << long_target.substr(0, 200);
  EXPECT_NE(long_target.find("The request target is longer than 8192 bytes"), std::string::npos);
  // Two requests on one keep-alive connection, the second asking to close.
  auto two = raw_exchange(node->port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t first = two.find("HTTP/1.1 200 ");
  EXPECT_EQ(first, 0u) << two;
  EXPECT_NE(two.find("HTTP/1.1 200 ", first + 1), std::string::npos) << two;
  // An idle keep-alive connection is closed after its 2 s (the read ends).
  auto t0 = clock::now();
  auto idle = raw_exchange(node->port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  auto idle_ms = ms_since(t0);
  EXPECT_EQ(idle.rfind("HTTP/1.1 200 ", 0), 0u) << idle;
  EXPECT_GE(idle_ms, 1500);
  EXPECT_LT(idle_ms, 8000);
  EXPECT_EQ(call(*node, "GET", "/health").status, 200);
}

TEST_F(http_test, ChunkedAndExpectContinueBodiesAreReadWhole) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  std::string head = "POST " + jobs_path(user) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + acc.key(user) + "\r\nContent-Type: application/json\r\nConnection: close\r\n";
  auto chunked = raw_exchange(node->port(), head + "Transfer-Encoding: chunked\r\n\r\n"
                                              "a\r\n{\"query\":\"\r\n9\r\nselect 1\"\r\n1\r\n}\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 201 ", 0), 0u) << chunked;
  EXPECT_NE(chunked.find(R"("query":"select 1")"), std::string::npos) << chunked;
  std::string body = R"({"query":"select 2"})";
  auto expect = raw_exchange(node->port(), head + "Expect: 100-continue\r\nContent-Length: "
                                             + std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(expect.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ", 0), 0u) << expect;
  EXPECT_NE(expect.find(R"("query":"select 2")"), std::string::npos) << expect;
}

TEST_F(http_test, RedisUnreachableIs503WhileHealthStays200) {
  auto dead_port = free_port();
  api_node node{"--api-only", {"--redis.port=" + std::to_string(dead_port)}};
  ASSERT_TRUE(node.wait_http("/health"));
  auto ready = call(node, "GET", "/ready");
  EXPECT_EQ(ready.status, 503) << ready;
  EXPECT_EQ(ready.error().rfind("Redis is unavailable: ", 0), 0u) << ready;

  for (int i = 0; i < 3; ++i) { // every request tries again, none crashes the node
    auto a = call(node, "POST", "/user/someone/api/v2/sql/job", R"({"query":"select 1"})",
                  "application/json", bearer("k"));
    EXPECT_EQ(a.status, 503) << a;
    EXPECT_EQ(a.error().rfind("Redis is unavailable: ", 0), 0u) << a;
  }
  auto g = call(node, "GET", "/user/someone/api/v2/sql/job/abc", "", "", bearer("k"));
  EXPECT_EQ(g.status, 503) << g;
  auto m = call(node, "GET", "/metrics");
  EXPECT_EQ(m.status, 200) << m;
  EXPECT_EQ(sample(m.body, "batchq_redis_up"), 0) << m.body;
  EXPECT_EQ(call(node, "GET", "/health").status, 200);
  EXPECT_EQ(node.stop(), 0) << node.log();
}

TEST_F(http_test, UnknownRoutesAre404Json) {
  auto node = start("--api-only");
  auto a = call(*node, "GET", "/api/v3/sql/job");
  EXPECT_EQ(a.status, 404) << a;
  EXPECT_EQ(a.error(), "Not found: GET /api/v3/sql/job");
  EXPECT_EQ(a.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(a.header("Access-Control-Allow-Origin"), "*");
}

// -- CORS and headers --------------------------------------------------------------------

TEST_F(http_test, OptionsOnAnyRouteIsACorsPreflightAndEveryAnswerCarriesCors) {
  auto node = start("--api-only");
  for (auto path : {"/api/v2/sql/job", "/user/x/api/v2/sql/job/abc", "/whatever"}) {
    auto a = call(*node, "OPTIONS", path);
    EXPECT_EQ(a.status, 200) << path << ": " << a;
    EXPECT_TRUE(a.body.empty()) << path;
    EXPECT_EQ(a.header("Access-Control-Allow-Origin"), "*");
    EXPECT_EQ(a.header("Access-Control-Allow-Headers"),
              "X-Requested-With, X-Prototype-Version, X-CSRF-Token, Authorization, "
              "Content-Type, Idempotency-Key");
    EXPECT_EQ(a.header("Access-Control-Allow-Methods"), "GET, POST, DELETE, OPTIONS");
  }
  auto user = acc.create_user();
  auto ok = post(*node, user, R"({"query":"select 1"})");
  EXPECT_EQ(ok.header("Access-Control-Allow-Origin"), "*");
  auto err = post(*node, user, R"({})");
  EXPECT_EQ(err.status, 400);
  EXPECT_EQ(err.header("Access-Control-Allow-Origin"), "*");
}

TEST_F(http_test, JobAnswersNameTheDatabaseHost) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto a = post(*node, user, R"({"query":"select 1"})");
  ASSERT_EQ(a.status, 201) << a;
  EXPECT_EQ(a.header("X-Served-By-DB-Host"), "127.0.0.1");
  EXPECT_EQ(a.header("Content-Type"), "application/json; charset=utf-8");
  auto g = get(*node, user, a.doc["job_id"].get<std::string>());
  EXPECT_EQ(g.header("X-Served-By-DB-Host"), "127.0.0.1");
  // The response never shows where or as whom the job runs.
  for (auto field : {"host", "port", "dbname", "dbuser", "pass", "node"})
    EXPECT_FALSE(g.doc.contains(field)) << field;
}

// -- jobs running to the end ---------------------------------------------------------------

TEST_F(http_test, EveryShapeRunsToDoneFromJsonAndFormBodies) {
  auto node = start();
  auto user = acc.create_user();
  auto t = db.log_table();
  auto ins = [&](const std::string& tag) {
    return "INSERT INTO " + t + " (job) VALUES ('" + tag + "')";
  };
  struct shape_case {
    std::string name, body, content_type, expect_shape;
  };
  std::vector<shape_case> cases{
    {"simple json", R"({"query":)" + jstr(ins("s1")) + "}", "application/json", "string"},
    {"multiple json", R"({"query":[)" + jstr(ins("m1")) + "," + jstr(ins("m2")) + "]}",
     "application/json", "array"},
    {"nested json",
     R"({"query":{"query":[{"query":)" + jstr(ins("n1")) + R"(,"onsuccess":)" + jstr(ins("n1ok"))
       + R"(}],"onsuccess":)" + jstr(ins("nok")) + "}}",
     "application/json", "object"},
    {"unified json",
     R"({"query":[{"query":)" + jstr(ins("u1")) + R"(,"onsuccess":)" + jstr(ins("u1ok")) + "},"
       + jstr(ins("u2")) + R"(],"onsuccess":)" + jstr(ins("uok")) + "}",
     "application/json", "array"},
    {"simple form", "query=" + httplib::detail::encode_query_param(ins("fs1")),
     "application/x-www-form-urlencoded", "string"},
    {"multiple form",
     "query[0]=" + httplib::detail::encode_query_param(ins("fm1"))
       + "&query[1]=" + httplib::detail::encode_query_param(ins("fm2")),
     "application/x-www-form-urlencoded", "array"},
    {"nested form",
     "query[query][0][query]=" + httplib::detail::encode_query_param(ins("fn1"))
       + "&query[onsuccess]=" + httplib::detail::encode_query_param(ins("fnok")),
     "application/x-www-form-urlencoded", "object"},
    {"unified form",
     "query[0][query]=" + httplib::detail::encode_query_param(ins("fu1"))
       + "&query[0][onsuccess]=" + httplib::detail::encode_query_param(ins("fu1ok"))
       + "&query[1]=" + httplib::detail::encode_query_param(ins("fu2"))
       + "&onsuccess=" + httplib::detail::encode_query_param(ins("fuok")),
     "application/x-www-form-urlencoded", "array"},
  };
  std::vector<std::pair<std::string, std::string>> ids;
  for (const auto& c : cases) {
    auto a = post(*node, user, c.body, c.content_type);
    ASSERT_EQ(a.status, 201) << c.name << ": " << a;
    EXPECT_EQ(a.doc["status"], "pending") << c.name;
    auto& q = a.doc["query"];
    EXPECT_EQ(q.is_string() ? "string" : q.is_array() ? "array" : "object", c.expect_shape)
      << c.name;
    ids.emplace_back(c.name, a.doc["job_id"].get<std::string>());
  }
  for (const auto& [name, id] : ids) {
    auto a = wait_final(*node, user, id);
    ASSERT_EQ(a.status, 200) << name << ": " << a;
    EXPECT_EQ(a.doc["status"], "done") << name << ": " << a;
    if (a.doc.contains("fallback_status")) {
      EXPECT_EQ(a.doc["fallback_status"], "done") << name << ": " << a;
    }
  }
  auto rows = db.exec("SELECT job FROM " + t + " ORDER BY job");
  std::set<std::string> tags;
  for (const auto& r : rows)
    tags.insert(r[0].as<std::string>());
  EXPECT_EQ(tags, (std::set<std::string>{"s1", "m1", "m2", "n1", "n1ok", "nok", "u1", "u1ok", "u2",
                                         "uok", "fs1", "fm1", "fm2", "fn1", "fnok", "fu1", "fu1ok",
                                         "fu2", "fuok"}));
}

TEST_F(http_test, SqlWithQuotesRoundTripsExactlyAndRuns) {
  auto node = start();
  auto user = acc.create_user();
  auto t = db.log_table();
  std::string value = R"(it's "quoted" \ back\slash; /* not a comment */ -- nor this)";
  std::string sql = "INSERT INTO " + t + " (job) VALUES ('" + [&] {
    std::string q;
    for (char c : value)
      q += c == '\'' ? std::string{"''"} : std::string(1, c);
    return q;
  }() + "')";
  auto a = post(*node, user, json{{"query", sql}}.dump());
  ASSERT_EQ(a.status, 201) << a;
  EXPECT_EQ(a.doc["query"], sql);
  auto id = a.doc["job_id"].get<std::string>();
  auto done = wait_final(*node, user, id);
  EXPECT_EQ(done.doc["status"], "done") << done;
  EXPECT_EQ(done.doc["query"], sql);
  auto rows = db.exec("SELECT job FROM " + t);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0].as<std::string>(), value);
}

TEST_F(http_test, CancellingAFinishedJobIs400) {
  auto node = start();
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":"select 1"})");
  ASSERT_EQ(wait_final(*node, user, id).doc["status"], "done");
  auto d = del(*node, user, id);
  EXPECT_EQ(d.status, 400) << d;
  EXPECT_EQ(d.error(), "Cannot set status from done to cancelled");
  EXPECT_EQ(acc.status(id), "done");
}

TEST_F(http_test, DeletingARunningJobCancelsItPromptly) {
  auto node = start();
  auto user = acc.create_user();
  auto id = create(*node, user, R"j({"query":["select pg_sleep(60)","select 2"]})j");
  ASSERT_TRUE(wait_statement(id)) << "the job never started";
  auto wip = call(*node, "GET", "/user/" + user + "/api/v1/jobs-wip", "", "", bearer(acc.key(user)));
  EXPECT_EQ(wip.status, 200) << wip;
  EXPECT_EQ(wip.doc, (json{{user, {id}}})) << wip;

  auto t0 = clock::now();
  auto d = del(*node, user, id);
  auto took = ms_since(t0);
  ASSERT_EQ(d.status, 200) << d;
  EXPECT_EQ(d.doc["status"], "cancelled") << d;
  EXPECT_EQ(d.doc["query"][0]["status"], "cancelled");
  EXPECT_EQ(d.doc["query"][1]["status"], "skipped");
  EXPECT_LT(took, 5000) << "cancel took " << took << " ms";
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(id); }, 5s))
    << "pg_sleep still runs";
  auto after = call(*node, "GET", "/api/v2/jobs-wip", "", "",
                    {{"Authorization", "Bearer " + acc.key(user)}, {"Host", user + ".x"}});
  EXPECT_EQ(after.doc, (json{{user, json::array()}})) << after;
}

// -- beyond CARTO: wait, idempotency, list --------------------------------------------------

TEST_F(http_test, WaitAnswersAsSoonAsTheJobIsFinal) {
  auto node = start();
  auto user = acc.create_user();
  auto id = create(*node, user, R"j({"query":"select pg_sleep(1)"})j");
  auto t0 = clock::now();
  auto a = get(*node, user, id, "?wait=30");
  auto took = ms_since(t0);
  ASSERT_EQ(a.status, 200) << a;
  EXPECT_EQ(a.doc["status"], "done") << a;
  EXPECT_LT(took, 15000) << "the wait did not end with the job";
  EXPECT_GE(took, 500) << "answered before the 1 s statement could end";
}

TEST_F(http_test, WaitAnswersThePendingJobWhenTheTimeRunsOut) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":"select 1"})");
  auto t0 = clock::now();
  auto a = get(*node, user, id, "?wait=0.6");
  auto took = ms_since(t0);
  ASSERT_EQ(a.status, 200) << a;
  EXPECT_EQ(a.doc["status"], "pending");
  EXPECT_GE(took, 550);
  EXPECT_LT(took, 5000);

  auto bad = get(*node, user, id, "?wait=soon");
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.error(),
            "wait must be a number of seconds from 0 to 60 (fractions allowed), got 'soon'");
}

TEST_F(http_test, AWaitingRequestSleepsUntilItsJobIsAnnouncedFinalInsteadOfPolling) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":"select 1"})");
  ASSERT_TRUE(wait_until([&] { return scrape(*node, "batchq_long_poll_subscribed") == 1; }, 10s))
    << "the long-polls never subscribed to " << redis::keys::jobs_final_channel;

  // An idle 3 s wait on a pending job: auth, HGETALL, the first HGET, one or
  // two safety reads (every 2 s), the closing HGETALL, the two of the second
  // scrape, and what the node's own actors did meanwhile (registry renewals):
  // 8-10 measured. Polling every 50 ms cost about 60.
  auto before = scrape(*node, "batchq_redis_round_trips_total");
  auto idle = get(*node, user, id, "?wait=3");
  auto spent = scrape(*node, "batchq_redis_round_trips_total") - before;
  ASSERT_EQ(idle.status, 200) << idle;
  EXPECT_EQ(idle.doc["status"], "pending");
  EXPECT_LE(spent, 20) << "the idle wait read Redis " << spent << " times";

  // The cancel's write wakes a waiting request at once, long before its next
  // safety read (2 s after it began waiting).
  auto waiter = wait_in_background(*node, user, id);
  EXPECT_TRUE(wait_until([&] { return scrape(*node, "batchq_long_polls_waiting") == 1; }, 10s));
  auto cancelled_at = clock::now();
  auto d = del(*node, user, id);
  auto [waited, woke] = waiter->finish(cancelled_at);
  EXPECT_EQ(d.status, 200) << d;
  ASSERT_EQ(waited.status, 200) << waited;
  EXPECT_EQ(waited.doc["status"], "cancelled") << waited;
  EXPECT_LT(woke, 1000) << "the waiting request answered " << woke << " ms after the cancel";
  EXPECT_EQ(scrape(*node, "batchq_long_polls_waiting"), 0);
}

TEST_F(http_test, AWaitingRequestOutlivesAKilledSubscriptionAndIsWokenAfterTheResubscribe) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":"select 1"})");
  // The id of the node's long-poll subscription in CLIENT LIST ("" if none).
  auto subscription_id = [&] {
    auto list = acc.batch().command({"CLIENT", "LIST", "TYPE", "pubsub"});
    std::istringstream in{list ? list->str : std::string{}};
    std::string line;
    while (std::getline(in, line))
      if (line.find(" name=batchq-finals:" + node->id() + " ") != std::string::npos)
        return line.substr(3, line.find(' ') - 3); // "id=<n> addr=..."
    return std::string{};
  };
  std::string first;
  ASSERT_TRUE(wait_until([&] { return !(first = subscription_id()).empty(); }, 10s));

  auto waiter = wait_in_background(*node, user, id);
  EXPECT_TRUE(wait_until([&] { return scrape(*node, "batchq_long_polls_waiting") == 1; }, 10s));
  acc.batch().command({"CLIENT", "KILL", "ID", first});
  std::string second;
  EXPECT_TRUE(wait_until([&] {
    second = subscription_id();
    return !second.empty() && second != first && scrape(*node, "batchq_long_poll_subscribed") == 1;
  }, 10s)) << "the subscription did not come back";
  EXPECT_EQ(scrape(*node, "batchq_long_polls_waiting"), 1) << "the kill ended the wait";
  auto cancelled_at = clock::now();
  EXPECT_EQ(del(*node, user, id).status, 200);
  auto [waited, woke] = waiter->finish(cancelled_at);
  ASSERT_EQ(waited.status, 200) << waited;
  EXPECT_EQ(waited.doc["status"], "cancelled") << waited;
  EXPECT_LT(woke, 1000) << "answered " << woke << " ms after the cancel";
}

TEST_F(http_test, ARepeatedIdempotencyKeyAnswers200WithTheOriginalJobAndCreatesNothing) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  httplib::Headers h = bearer(acc.key(user));
  h.emplace("Idempotency-Key", "order-42");
  auto first = post(*node, user, R"({"query":"select 1"})", "application/json", h);
  ASSERT_EQ(first.status, 201) << first;
  auto second = post(*node, user, R"({"query":"select 'different'"})", "application/json", h);
  ASSERT_EQ(second.status, 200) << second;
  EXPECT_EQ(second.doc["job_id"], first.doc["job_id"]);
  EXPECT_EQ(second.doc["query"], "select 1");
  EXPECT_EQ(acc.llen(redis::keys::queue(user)), 1);
  auto list = call(*node, "GET", jobs_path(user), "", "", bearer(acc.key(user)));
  EXPECT_EQ(list.doc["jobs"].size(), 1u) << list;

  // The key belongs to its user: another user's same key creates a job.
  auto other = acc.create_user();
  httplib::Headers h2 = bearer(acc.key(other));
  h2.emplace("Idempotency-Key", "order-42");
  auto third = post(*node, other, R"({"query":"select 1"})", "application/json", h2);
  EXPECT_EQ(third.status, 201) << third;

  httplib::Headers bad = bearer(acc.key(user));
  bad.emplace("Idempotency-Key", "has space");
  auto refused = post(*node, user, R"({"query":"select 1"})", "application/json", bad);
  EXPECT_EQ(refused.status, 400) << refused;
  EXPECT_EQ(refused.error(), "Idempotency-Key must be 1 to 255 visible ASCII characters");

  // Within 24 h the key still names the job after the job itself expired.
  auto id = first.doc["job_id"].get<std::string>();
  acc.batch().command({"DEL", redis::keys::job(id)});
  auto gone = post(*node, user, R"({"query":"select 1"})", "application/json", h);
  EXPECT_EQ(gone.status, 409) << gone;
  EXPECT_EQ(gone.error(), "Idempotency-Key 'order-42' was used for job " + id
                            + ", which no longer exists");
}

TEST_F(http_test, AStoppingNodeAnswersAWaitingRequestAtOnceAndExitsCleanly) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query":"select 1"})");
  answer waited;
  auto t0 = clock::now();
  std::thread waiter{[&] { waited = get(*node, user, id, "?wait=60"); }};
  // Stop once the request waits.
  EXPECT_TRUE(wait_until(
    [&] { return scrape(*node, "batchq_long_polls_waiting") == 1; },
    10s));
  EXPECT_EQ(node->stop(), 0) << node->log();
  waiter.join();
  EXPECT_LT(ms_since(t0), 10000) << "the wait held the shutdown";
  EXPECT_EQ(waited.status, 200) << waited;
  EXPECT_EQ(waited.doc["status"], "pending") << waited;
}

TEST_F(http_test, ListPagesTheCallersJobsNewestFirstAndFiltersByStatus) {
  auto node = start("--api-only");
  auto user = acc.create_user();
  auto other = acc.create_user();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(create(*node, user, R"({"query":"select )" + std::to_string(i) + R"("})"));
  create(*node, other, R"({"query":"select 1"})");
  ASSERT_EQ(del(*node, user, ids[1]).status, 200);
  ASSERT_EQ(del(*node, user, ids[3]).status, 200);

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (; pages < 10; ++pages) {
    auto a = call(*node, "GET", jobs_path(user) + "?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor),
                  "", "", bearer(acc.key(user)));
    ASSERT_EQ(a.status, 200) << a;
    ASSERT_LE(a.doc["jobs"].size(), 2u);
    for (auto& j : a.doc["jobs"]) {
      EXPECT_EQ(j["user"], user);
      seen.push_back(j["job_id"].get<std::string>());
    }
    if (a.doc["next"].is_null())
      break;
    cursor = a.doc["next"].get<std::string>();
  }
  EXPECT_EQ(pages, 2) << "5 jobs in pages of 2";
  EXPECT_EQ(seen, (std::vector<std::string>{ids[4], ids[3], ids[2], ids[1], ids[0]}));

  auto cancelled = call(*node, "GET", jobs_path(user) + "?status=cancelled,done", "", "",
                        bearer(acc.key(user)));
  ASSERT_EQ(cancelled.status, 200) << cancelled;
  ASSERT_EQ(cancelled.doc["jobs"].size(), 2u) << cancelled;
  EXPECT_EQ(cancelled.doc["jobs"][0]["job_id"], ids[3]);
  EXPECT_EQ(cancelled.doc["jobs"][1]["job_id"], ids[1]);
  EXPECT_TRUE(cancelled.doc["next"].is_null());

  for (auto [query, message] : std::vector<std::pair<std::string, std::string>>{
         {"?limit=0", "limit must be an integer from 1 to 100, got '0'"},
         {"?limit=101", "limit must be an integer from 1 to 100, got '101'"},
         {"?cursor=nope", "cursor must be a `next` value of an earlier page, got 'nope'"},
         {"?status=finished", "status must be a comma-separated list of pending, running, done, "
                              "failed, cancelled, skipped, unknown; got 'finished'"}}) {
    auto a = call(*node, "GET", jobs_path(user) + query, "", "", bearer(acc.key(user)));
    EXPECT_EQ(a.status, 400) << query << ": " << a;
    EXPECT_EQ(a.error(), message);
  }
}

// -- node modes ----------------------------------------------------------------------------

TEST_F(http_test, AWorkerOnlyNodeServesOnlyTheProbes) {
  auto node = start("--worker-only");
  auto health = call(*node, "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.doc, (json{{"status", "ok"}}));
  auto ready = call(*node, "GET", "/ready");
  EXPECT_EQ(ready.status, 200) << ready;
  EXPECT_EQ(call(*node, "GET", "/metrics").status, 200);
  auto user = acc.create_user();
  auto a = post(*node, user, R"({"query":"select 1"})");
  EXPECT_EQ(a.status, 404) << a;
  EXPECT_EQ(a.error(), "Not found: POST " + jobs_path(user));
  EXPECT_EQ(get(*node, user, "abc").status, 404);
  // The registry names its HTTP port. The node registers just after /ready
  // turns true (node::start), so the test waits for the field.
  std::string port;
  EXPECT_TRUE(wait_until(
    [&] {
      auto r = acc.batch().command({"HGET", redis::keys::node(node->id()), "http_port"});
      port = r ? r->str : "";
      return !port.empty();
    },
    10s));
  EXPECT_EQ(port, std::to_string(node->port()));
}

TEST_F(http_test, AnApiOnlyNodeTakesJobsThatAWorkerOnlyNodeRunsAndCancelsThere) {
  auto api = start("--api-only");
  auto worker = start("--worker-only");
  auto user = acc.create_user();
  auto id = create(*api, user, R"({"query":"select 1"})");
  auto done = wait_final(*api, user, id);
  EXPECT_EQ(done.doc["status"], "done") << done;
  EXPECT_EQ(acc.job_hash(id)["node"], worker->id());

  // A cancel through the API node reaches the statement on the worker node.
  auto slow = create(*api, user, R"j({"query":"select pg_sleep(60)"})j");
  ASSERT_TRUE(wait_statement(slow));
  auto d = del(*api, user, slow);
  EXPECT_EQ(d.status, 200) << d;
  EXPECT_TRUE(wait_until([&] { return acc.status(slow) == "cancelled"; }, 10s))
    << acc.status(slow);
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(slow); }, 5s));
}

TEST_F(http_test, AFullNodeIsReadyOnceItsWorkerListens) {
  auto node = start();
  auto ready = call(*node, "GET", "/ready");
  EXPECT_EQ(ready.status, 200) << ready;
  EXPECT_EQ(ready.doc, (json{{"status", "ready"}}));
}

// -- nodes on several hosts (SPEC §5 v2) ----------------------------------------------------
// Two nodes on two loopback addresses with ONE cluster.port, as on two hosts:
// a node that connected to "its" port on 127.0.0.1 would reach nobody (or
// itself), so these pass only when each node listens on its cluster.bind,
// registers it, and the other connects there.

/// The node's registration, once it is there.
std::map<std::string, std::string> registration(accounts& acc, const std::string& node_id) {
  std::map<std::string, std::string> f;
  wait_until(
    [&] {
      auto h = acc.batch().command({"HGETALL", redis::keys::node(node_id)});
      f.clear();
      if (h)
        for (size_t i = 0; i + 1 < h->elements.size(); i += 2)
          f[h->elements[i].str] = h->elements[i + 1].str;
      return !f.empty();
    },
    10s);
  return f;
}

/// An API node on 127.0.0.2 and a worker node on 127.0.0.3, one cluster port.
struct two_hosts {
  std::string port = std::to_string(free_port());
  std::unique_ptr<api_node> api, worker;
};

two_hosts start_two_hosts(http_test& t, const std::string& api_secret,
                          const std::string& worker_secret) {
  two_hosts h;
  h.api = t.start("--api-only", {"--cluster.bind=127.0.0.2", "--cluster.port=" + h.port,
                                 "--cluster.secret=" + api_secret});
  h.worker = t.start("--worker-only", {"--cluster.bind=127.0.0.3", "--cluster.port=" + h.port,
                                       "--cluster.secret=" + worker_secret});
  return h;
}

TEST_F(http_test, NodesOnTwoAddressesWithOneClusterPortCancelThroughTheGateWithTheSecret) {
  const std::string secret = "batchq-test-secret-7f3a";
  auto hosts = start_two_hosts(*this, secret, secret);
  auto& api = hosts.api;
  auto& worker = hosts.worker;
  auto& port = hosts.port;
  auto reg = registration(acc, worker->id());
  EXPECT_EQ(reg["address"], "127.0.0.3");
  EXPECT_EQ(reg["cluster_port"], port);
  EXPECT_EQ(registration(acc, api->id())["address"], "127.0.0.2");

  auto user = acc.create_user();
  auto slow = create(*api, user, R"j({"query":"select pg_sleep(60)"})j");
  ASSERT_TRUE(wait_statement(slow));
  EXPECT_EQ(acc.job_hash(slow)["node"], worker->id());
  auto t0 = clock::now();
  auto d = del(*api, user, slow);
  auto took = ms_since(t0);
  EXPECT_EQ(d.status, 200) << d;
  EXPECT_EQ(d.doc["status"], "cancelled") << d;
  EXPECT_LT(took, 5000) << "through the gate, not after a connect timeout";
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(slow); }, 5s));

  auto m = call(*api, "GET", "/metrics").body;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="node"})"), 1) << m;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="backend"})"), 0) << m;
  auto w = call(*worker, "GET", "/metrics").body;
  EXPECT_EQ(sample(w, R"(batchq_cluster_messages_refused_total{reason="bad_proof"})"), 0) << w;
  EXPECT_EQ(sample(w, R"(batchq_cluster_messages_refused_total{reason="wrong_node"})"), 0) << w;

  // The secret is in no log and in no Redis record.
  EXPECT_EQ(api->log().find(secret), std::string::npos);
  EXPECT_EQ(worker->log().find(secret), std::string::npos);
  for (const auto& [k, v] : acc.job_hash(slow))
    EXPECT_EQ(v.find(secret), std::string::npos) << k;
  for (const auto& [k, v] : reg)
    EXPECT_EQ(v.find(secret), std::string::npos) << k;
}

TEST_F(http_test, AGateRefusesAWrongSecretAndTheBackendFallbackStillRecordsTheCancel) {
  auto hosts = start_two_hosts(*this, "not-the-secret", "the-secret");
  auto& api = hosts.api;
  auto& worker = hosts.worker;
  auto user = acc.create_user();
  auto slow = create(*api, user, R"j({"query":"select pg_sleep(60)"})j");
  ASSERT_TRUE(wait_statement(slow));
  auto d = del(*api, user, slow);
  // The worker's runner sees 57014 from pg_cancel_backend and the cancel mark
  // the Redis half left, and records the cancel; the answer waited for it.
  EXPECT_EQ(d.status, 200) << d;
  EXPECT_EQ(d.doc["status"], "cancelled") << d;
  EXPECT_EQ(acc.status(slow), "cancelled");
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(slow); }, 5s));

  auto m = call(*api, "GET", "/metrics").body;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="node"})"), 0) << m;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="backend"})"), 1) << m;
  auto w = call(*worker, "GET", "/metrics").body;
  EXPECT_EQ(sample(w, R"(batchq_cluster_messages_refused_total{reason="bad_proof"})"), 1) << w;
  EXPECT_NE(worker->log().find("cluster message refused"), std::string::npos);
}

TEST_F(http_test, APendingCancelIsCountedAsSuch) {
  auto api = start("--api-only");
  auto user = acc.create_user();
  auto id = create(*api, user, R"({"query":"select 1"})");
  auto d = del(*api, user, id);
  EXPECT_EQ(d.status, 200) << d;
  auto m = call(*api, "GET", "/metrics").body;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="pending"})"), 1) << m;
  EXPECT_EQ(sample(m, R"(batchq_cancel_requests_total{path="local"})"), 0) << m;
}

// -- metrics -------------------------------------------------------------------------------

TEST_F(http_test, MetricsCountCreatedAndFinishedJobsAndShowTheHistograms) {
  auto node = start();
  auto user = acc.create_user();
  auto before = call(*node, "GET", "/metrics");
  ASSERT_EQ(before.status, 200);
  EXPECT_EQ(before.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto created0 = sample(before.body, "batchq_jobs_created_total");
  auto done0 = sample(before.body, "batchq_jobs_finished_total{status=\"done\"}");
  EXPECT_GE(created0, 0);
  EXPECT_GE(done0, 0);
  EXPECT_GE(sample(before.body, "batchq_queue_depth"), 0) << before.body;
  EXPECT_GE(sample(before.body, "batchq_queued_users"), 0) << before.body;

  auto id = create(*node, user, R"({"query":["select 1","select 2"]})");
  ASSERT_EQ(wait_final(*node, user, id).doc["status"], "done");
  // The status actor counts the job once its final write has landed, which is
  // also when a reader can see it done: the count may come a moment later.
  const std::string done_sample = "batchq_jobs_finished_total{status=\"done\"}";
  EXPECT_TRUE(wait_until(
    [&] { return scrape(*node, done_sample) >= done0 + 1; }, 10s));
  auto after = call(*node, "GET", "/metrics");
  EXPECT_EQ(sample(after.body, "batchq_jobs_created_total"), created0 + 1);
  EXPECT_EQ(sample(after.body, done_sample), done0 + 1);
  EXPECT_GE(sample(after.body, "batchq_statement_duration_seconds_count"), 2) << after.body;
  EXPECT_GE(sample(after.body, "batchq_statement_duration_seconds_bucket{le=\"+Inf\"}"), 2);
  EXPECT_GE(sample(after.body, "batchq_enqueue_to_start_seconds_count"), 1);
  EXPECT_EQ(sample(after.body, "batchq_redis_up"), 1);
}

} // namespace
