// Kept results over HTTP (SPEC §11; docs/results.md): a job asks for them,
// the real `batchq serve` keeps its steps' rows in the real Redis, and
// `GET .../sql/job/{id}/results/{step}` serves them as JSON pages and as CSV,
// with every error of SPEC §11. Harness: harness.hpp.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/http/harness.hpp"

using namespace batchq;
using namespace batchq::test;
using namespace batchq::test::http_api;
using namespace std::chrono_literals;

namespace {

struct results_http : ::testing::Test {
  accounts acc;
  test::serve::sql db;

  std::unique_ptr<api_node> start(std::vector<std::string> extra = {}) {
    auto n = std::make_unique<api_node>("", std::move(extra));
    EXPECT_TRUE(n->wait_http()) << "node " << n->id() << " did not become ready";
    return n;
  }

  std::string job_path(const std::string& user, const std::string& id) {
    return "/user/" + user + "/api/v2/sql/job/" + id;
  }

  std::string create(const api_node& n, const std::string& user, const std::string& body,
                     const std::string& type = "application/json") {
    auto a = call(n, "POST", "/user/" + user + "/api/v2/sql/job", body, type,
                  bearer(acc.key(user)));
    EXPECT_EQ(a.status, 201) << a;
    return a.status == 201 ? a.doc["job_id"].get<std::string>() : std::string{};
  }

  answer get(const api_node& n, const std::string& user, const std::string& path_tail,
             httplib::Headers headers = {}) {
    headers.emplace("Authorization", "Bearer " + acc.key(user));
    return call(n, "GET", "/user/" + user + "/api/v2/sql/job/" + path_tail, "", "", headers);
  }

  /// Rows step `step` of job `id` has kept so far (its meta in the job's hash).
  int64_t kept_rows(const std::string& id, size_t step) {
    auto m = acc.job_hash(id);
    auto it = m.find("results:" + std::to_string(step));
    if (it == m.end())
      return 0;
    auto meta = json::parse(it->second, nullptr, false);
    return meta.is_object() ? meta.value("rows", int64_t{0}) : 0;
  }

  answer wait_final(const api_node& n, const std::string& user, const std::string& id) {
    auto deadline = clock::now() + 60s;
    answer a;
    do {
      a = get(n, user, id + "?wait=10");
      auto s = a.doc.is_object() ? a.doc.value("status", "") : std::string{};
      if (a.status != 200 || s == "done" || s == "failed" || s == "cancelled")
        return a;
    } while (clock::now() < deadline);
    return a;
  }
};

TEST_F(results_http, AJobKeepsItsRowsAndServesThemAsJsonPagesAndCsv) {
  auto node = start();
  auto user = acc.create_user();
  const std::string rows_sql =
    "SELECT g AS n, 'r,' || g AS label, CASE WHEN g % 3 = 0 THEN NULL ELSE g * 1.5 END AS x, "
    "json_build_object('g', g) AS j FROM generate_series(1, 2500) g";
  auto id = create(*node, user,
                   json{{"query", json::array({json{{"query", rows_sql}},
                                               json{{"query", "select 2"}, {"results", false}}})},
                        {"results", true}}
                     .dump());
  auto done = wait_final(*node, user, id);
  ASSERT_EQ(done.doc["status"], "done") << done;
  EXPECT_EQ(done.doc["results"], true) << done;
  auto& kept = done.doc["query"][0]["results"];
  EXPECT_EQ(kept["rows"], 2500) << done;
  EXPECT_GT(kept["bytes"].get<int64_t>(), 2500 * 20) << done;
  EXPECT_EQ(kept["truncated"], false) << done;
  EXPECT_EQ(done.doc["query"][1]["results"], false) << done;
  auto metrics = call(*node, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("batchq_result_rows_kept_total 2500\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("batchq_result_bytes_kept_total "
                         + std::to_string(kept["bytes"].get<int64_t>()) + "\n"),
            std::string::npos)
    << metrics;

  // Three pages of 1,000, 1,000 and 500 rows, linked by `next`.
  std::vector<json> rows;
  std::string tail = id + "/results/0?limit=1000";
  int pages = 0;
  for (;;) {
    auto page = get(*node, user, tail);
    ASSERT_EQ(page.status, 200) << page;
    ++pages;
    EXPECT_EQ(page.doc["job_id"], id);
    EXPECT_EQ(page.doc["step"], 0);
    EXPECT_EQ(page.doc["row_count"], 2500);
    EXPECT_EQ(page.doc["truncated"], false);
    EXPECT_EQ(page.doc["columns"], json::parse(R"([{"name":"n","type":"int4"},
      {"name":"label","type":"text"},{"name":"x","type":"numeric"},
      {"name":"j","type":"json"}])"));
    for (auto& r : page.doc["rows"])
      rows.push_back(r);
    if (page.doc["next"].is_null())
      break;
    tail = id + "/results/0?limit=1000&cursor=" + page.doc["next"].get<std::string>();
    ASSERT_LT(pages, 5) << "no end of the pages";
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(rows.size(), 2500u);
  for (size_t i = 0; i < rows.size(); ++i) {
    auto g = static_cast<int64_t>(i + 1);
    ASSERT_EQ(rows[i][0], g) << rows[i];
    ASSERT_EQ(rows[i][1], "r," + std::to_string(g)) << rows[i];
    if (g % 3 == 0)
      ASSERT_TRUE(rows[i][2].is_null()) << rows[i];
    else
      ASSERT_TRUE(rows[i][2].is_string()) << rows[i]; // numeric: PostgreSQL's text
    ASSERT_EQ(rows[i][3], (json{{"g", g}})) << rows[i];
  }
  // The default page is results.page-rows (1000).
  EXPECT_EQ(get(*node, user, id + "/results/0").doc["rows"].size(), 1000u);

  // All of it as CSV, by parameter or by Accept.
  for (auto [tail_csv, headers] : std::vector<std::pair<std::string, httplib::Headers>>{
         {id + "/results/0?format=csv", {}}, {id + "/results/0", {{"Accept", "text/csv"}}}}) {
    auto csv = get(*node, user, tail_csv, headers);
    ASSERT_EQ(csv.status, 200) << csv.status;
    EXPECT_EQ(csv.header("Content-Type"), "text/csv; charset=utf-8");
    std::istringstream in{csv.body};
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line))
      lines.push_back(line);
    ASSERT_EQ(lines.size(), 2501u);
    EXPECT_EQ(lines[0], "n,label,x,j");
    EXPECT_EQ(lines[1], R"(1,"r,1",1.5,"{""g"" : 1}")");
    EXPECT_EQ(lines[3], R"(3,"r,3",,"{""g"" : 3}")");
    EXPECT_EQ(lines[2500], R"(2500,"r,2500",3750.0,"{""g"" : 2500}")");
  }
  // Byte for byte what PostgreSQL's own COPY writes for the same query.
  auto copy = "psql -X -q -h 127.0.0.1 -p " + std::to_string(pg_port())
              + " -U postgres -d postgres -c \"COPY (" + rows_sql
              + ") TO STDOUT (FORMAT csv, HEADER)\"";
  std::string expected;
  if (FILE* p = ::popen(copy.c_str(), "r")) {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      expected.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << copy;
  }
  EXPECT_EQ(get(*node, user, id + "/results/0?format=csv").body, expected);

  // The errors of SPEC §11.
  auto one = get(*node, user, id + "/results/1");
  EXPECT_EQ(one.status, 404) << one;
  EXPECT_EQ(one.error(), "Step 1 of job " + id + " keeps no results");
  auto seven = get(*node, user, id + "/results/7");
  EXPECT_EQ(seven.status, 404) << seven;
  EXPECT_EQ(seven.error(), "Job " + id + " has no step 7");
  auto limit = get(*node, user, id + "/results/0?limit=0");
  EXPECT_EQ(limit.status, 400) << limit;
  EXPECT_EQ(limit.error(), "limit must be an integer from 1 to 10000, got '0'");
  auto cursor = get(*node, user, id + "/results/0?cursor=x");
  EXPECT_EQ(cursor.status, 400) << cursor;
  auto other = acc.create_user();
  auto foreign = call(*node, "GET", "/user/" + other + "/api/v2/sql/job/" + id + "/results/0",
                      "", "", bearer(acc.key(other)));
  EXPECT_EQ(foreign.status, 404) << foreign;
  EXPECT_EQ(foreign.error(), "Job with id " + id + " not found");
  EXPECT_EQ(foreign.body.find("r,1"), std::string::npos);
}

TEST_F(results_http, AStepStillRunningIs409AndRowsPastTheCapAreLeftOutAsTruncated) {
  auto node = start({"--results.max-bytes=20000"});
  auto user = acc.create_user();
  auto id = create(*node, user,
                   R"j({"query": ["select pg_sleep(1.5)",
                                 "select g, repeat('x', 100) from generate_series(1, 100000) g"],
                       "results": true})j");
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id); }, 20s));
  auto early = get(*node, user, id + "/results/1");
  EXPECT_EQ(early.status, 409) << early;
  EXPECT_EQ(early.error(), "Step 1 of job " + id + " has not finished");
  auto done = wait_final(*node, user, id);
  ASSERT_EQ(done.doc["status"], "done") << done;
  auto& kept = done.doc["query"][1]["results"];
  EXPECT_EQ(kept["truncated"], true) << done;
  EXPECT_LE(kept["bytes"].get<int64_t>(), 20000) << done;
  EXPECT_GT(kept["rows"].get<int64_t>(), 100) << done;
  auto page = get(*node, user, id + "/results/1?limit=10000");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.doc["truncated"], true);
  EXPECT_EQ(page.doc["rows"].size(), kept["rows"].get<size_t>());
  EXPECT_EQ(page.doc["rows"][0][0], 1);
  // pg_sleep returns one void row: kept (step 0 asks too).
  EXPECT_EQ(get(*node, user, id + "/results/0").doc["rows"], json::parse(R"([[""]])"));
}

TEST_F(results_http, AFormBodyAsksWithResultsTrueAndAFailedStepKeepsNothing) {
  auto node = start();
  auto user = acc.create_user();
  auto id = create(*node, user,
                   "query=select+41+%2B+1+as+answer,+'pg_class'::regclass+as+r&results=true",
                   "application/x-www-form-urlencoded");
  auto done = wait_final(*node, user, id);
  ASSERT_EQ(done.doc["status"], "done") << done;
  EXPECT_EQ(done.doc["results"], true);
  auto page = get(*node, user, id + "/results/0");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.doc["rows"], json::parse(R"([[42, "pg_class"]])"));
  // regclass is not in batchq's table of built-in names: looked up in pg_type.
  EXPECT_EQ(page.doc["columns"],
            json::parse(R"([{"name":"answer","type":"int4"},{"name":"r","type":"regclass"}])"));

  auto failed = create(*node, user,
                       R"j({"query": "select g from generate_series(1, 10) g; select 1/0",
                           "results": true})j");
  auto f = wait_final(*node, user, failed);
  ASSERT_EQ(f.doc["status"], "failed") << f;
  auto none = get(*node, user, failed + "/results/0");
  ASSERT_EQ(none.status, 200) << none;
  EXPECT_EQ(none.doc["row_count"], 0);
  EXPECT_TRUE(none.doc["rows"].empty());
}

TEST_F(results_http, AResultFarLargerThanTheCapKeepsTheNodesMemoryFlat) {
  auto node = start(); // results.max-bytes: 16 MiB
  auto user = acc.create_user();
  // About 300 MB of rows, 18 times the cap.
  auto id = create(*node, user,
                   R"j({"query": "select g, repeat('x', 1000) from generate_series(1, 300000) g",
                        "results": true})j");
  auto before_kb = proc_status_kb(node->pid(), "VmHWM:");
  ASSERT_GT(before_kb, 0);
  auto done = wait_final(*node, user, id);
  ASSERT_EQ(done.doc["status"], "done") << done;
  auto grew_mb = (proc_status_kb(node->pid(), "VmHWM:") - before_kb) / 1024;
  EXPECT_LT(grew_mb, 64) << "the node's peak grew " << grew_mb << " MB";
  auto page = get(*node, user, id + "/results/0?limit=1");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.doc["truncated"], true);
  auto rows = page.doc["row_count"].get<int64_t>();
  EXPECT_GT(rows, 15000); // 16 MiB of ~1,012-byte rows
  EXPECT_LT(rows, 17000);
}

TEST_F(results_http, AStepRetriedAfterADrainKeepsEachRowExactlyOnce) {
  auto user = acc.create_user();
  std::string id;
  {
    auto first = start({"--batch.shutdown-grace=0"});
    id = create(*first, user,
                R"({"query": "select g, pg_sleep(0.001) from generate_series(1, 3000) g",
                    "results": true})");
    // Some batches of the first run are in Redis when the node is drained.
    ASSERT_TRUE(wait_until(
      [&] { return kept_rows(id, 0) >= 500; },
      20s))
      << "the first run kept nothing";
    ASSERT_EQ(first->stop(20s), std::optional<int>{0}) << first->log();
    EXPECT_EQ(acc.status(id), "pending") << "the drain did not requeue the job";
  }
  auto second = start();
  auto done = wait_final(*second, user, id);
  ASSERT_EQ(done.doc["status"], "done") << done;
  auto page = get(*second, user, id + "/results/0?limit=10000");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.doc["row_count"], 3000);
  ASSERT_EQ(page.doc["rows"].size(), 3000u);
  for (size_t i = 0; i < 3000; ++i)
    ASSERT_EQ(page.doc["rows"][i][0], static_cast<int64_t>(i + 1)) << "row " << i;
}

TEST_F(results_http, ACancelledStepKeepsNothingOfItsStatement) {
  auto node = start();
  auto user = acc.create_user();
  auto id = create(*node, user,
                   R"({"query": "select g, pg_sleep(0.001) from generate_series(1, 100000) g",
                       "results": true})");
  ASSERT_TRUE(wait_until(
    [&] { return kept_rows(id, 0) >= 500; },
    20s));
  auto d = call(*node, "DELETE", job_path(user, id), "", "", bearer(acc.key(user)));
  ASSERT_EQ(d.status, 200) << d;
  auto done = wait_final(*node, user, id);
  ASSERT_EQ(done.doc["status"], "cancelled") << done;
  auto page = get(*node, user, id + "/results/0");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.doc["row_count"], 0);
  EXPECT_TRUE(page.doc["rows"].empty());
  redis::client c{redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), batch_db}};
  EXPECT_EQ(c.command({"LLEN", redis::keys::results(id)})->integer, 0);
}

TEST_F(results_http, KeptRowsExpireWithTheirJob) {
  auto node = start({"--batch.finished-jobs-ttl=1"});
  auto user = acc.create_user();
  auto id = create(*node, user, R"({"query": "select 1 as one", "results": true})");
  ASSERT_EQ(wait_final(*node, user, id).doc["status"], "done");
  redis::client c{redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port()), batch_db}};
  // The rows carry the job's TTL (or are already gone with it).
  auto pttl = c.command({"PTTL", redis::keys::results(id)});
  ASSERT_TRUE(pttl);
  EXPECT_TRUE(pttl->integer == -2 || (pttl->integer > 0 && pttl->integer <= 1000)) << pttl->integer;
  EXPECT_TRUE(wait_until(
    [&] {
      auto e = c.command({"EXISTS", redis::keys::results(id), redis::keys::job(id)});
      return e && e->integer == 0;
    },
    10s))
    << "the job or its rows outlived the TTL";
  auto gone = get(*node, user, id + "/results/0");
  EXPECT_EQ(gone.status, 404) << gone;
  EXPECT_EQ(gone.error(), "Job with id " + id + " not found");
}

} // namespace
