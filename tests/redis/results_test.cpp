// Kept results in the real Redis (SPEC §11; docs/results.md): results_begin.lua
// and results_append.lua — steps in order in one list, a retried step starting
// afresh, a later statement of a step's string replacing the earlier one's
// rows, the run fence, and the expiry with the job's final write.
#include "src/redis/results.hpp"

#include <nlohmann/json.hpp>

#include "messages/error.hpp"
#include "tests/redis/redis_test_support.hpp"

namespace batchq::redis {
namespace {

using namespace batchq::redis::test;

struct results_test : ::testing::Test {
  scoped_user u{"res"};
  client& c = u.c;
  std::string id = u.new_job_id();

  void SetUp() override {
    auto fields = pending_job(u.name);
    std::vector<std::string> hset{"HSET", keys::job(id)};
    for (auto& [k, v] : fields) {
      hset.push_back(k);
      hset.push_back(k == "status" ? "running" : v);
    }
    must(c, hset);
  }

  void TearDown() override { c.command({"DEL", keys::results(id)}); }

  /// The step's meta as the results route reads it.
  nlohmann::json meta(size_t step) {
    auto r = must(c, {"HGET", keys::job(id), "results:" + std::to_string(step)});
    return r.is_string() ? nlohmann::json::parse(r.str) : nlohmann::json{};
  }

  std::vector<std::string> all_rows() {
    return value_or(read_result_rows(c, id, 0, 1000000), std::vector<std::string>{});
  }

  void append(size_t step, const std::string& run, std::vector<std::string> rows,
              bool finished = false, bool restart = false) {
    results_batch b;
    b.rows = std::move(rows);
    for (auto& r : b.rows)
      b.bytes += static_cast<int64_t>(r.size());
    b.finished = finished;
    b.restart = restart;
    auto a = append_results(c, id, step, run, b);
    ASSERT_TRUE(a) << message_of(a.error());
  }
};

TEST_F(results_test, StepsKeepTheirRowsInOrderInOneListWithTheirOwnMeta) {
  auto s0 = begin_results(c, id, 0, "run-a");
  ASSERT_TRUE(s0) << message_of(s0.error());
  EXPECT_EQ(s0->first_row, 0);
  EXPECT_EQ(s0->bytes_before, 0);
  results_batch first;
  first.columns_json = R"([{"name":"n","type":"int4"}])";
  first.rows = {R"(["1"])", R"(["2"])"};
  first.bytes = 10;
  ASSERT_TRUE(append_results(c, id, 0, "run-a", first));
  append(0, "run-a", {R"(["3"])"}, true);

  auto s2 = begin_results(c, id, 2, "run-b"); // step 1 keeps nothing
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->first_row, 3);
  EXPECT_EQ(s2->bytes_before, 15);
  append(2, "run-b", {R"(["x",null])"}, true);

  EXPECT_EQ(all_rows(), (std::vector<std::string>{R"(["1"])", R"(["2"])", R"(["3"])",
                                                   R"(["x",null])"}));
  auto m0 = meta(0);
  EXPECT_EQ(m0["start"], 0);
  EXPECT_EQ(m0["rows"], 3);
  EXPECT_EQ(m0["bytes"], 15);
  EXPECT_EQ(m0["finished"], true);
  EXPECT_EQ(m0["truncated"], false);
  EXPECT_EQ(must(c, {"HGET", keys::job(id), "results:0:columns"}).str, first.columns_json);
  EXPECT_EQ(meta(2)["start"], 3);
  EXPECT_EQ(meta(2)["rows"], 1);
  EXPECT_EQ(value_or(read_result_rows(c, id, 1, 2), std::vector<std::string>{}),
            (std::vector<std::string>{R"(["2"])", R"(["3"])"}));
}

TEST_F(results_test, ARetriedStepStartsAfreshAndTheEarlierRunIsFencedOut) {
  ASSERT_TRUE(begin_results(c, id, 0, "r0"));
  append(0, "r0", {R"(["a"])"}, true);
  ASSERT_TRUE(begin_results(c, id, 1, "old"));
  append(1, "old", {R"(["b1"])", R"(["b2"])"});
  // The job was requeued while step 1 ran; a new run of step 1 begins.
  ASSERT_TRUE(begin_results(c, id, 1, "new"));
  EXPECT_EQ(all_rows(), (std::vector<std::string>{R"(["a"])"}));
  EXPECT_EQ(meta(1)["rows"], 0);
  results_batch late;
  late.rows = {R"(["late"])"};
  auto refused = append_results(c, id, 1, "old", late);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), ec::invalid_transition)) << message_of(refused.error());
  EXPECT_EQ(message_of(refused.error()), "the rows of step 1 are kept by another run");
  append(1, "new", {R"(["c"])"}, true);
  EXPECT_EQ(all_rows(), (std::vector<std::string>{R"(["a"])", R"(["c"])"}));
  // Nobody began step 5.
  EXPECT_FALSE(append_results(c, id, 5, "new", late));
}

TEST_F(results_test, ALaterStatementOfTheStringReplacesTheRowsOfTheEarlierOne) {
  ASSERT_TRUE(begin_results(c, id, 0, "r"));
  append(0, "r", {R"(["p"])"});
  ASSERT_TRUE(begin_results(c, id, 1, "r"));
  append(1, "r", {R"(["first statement"])", R"(["of the string"])"});
  results_batch next;
  next.restart = true;
  next.columns_json = R"([{"name":"b","type":"text"}])";
  next.rows = {R"(["second"])"};
  next.bytes = 10;
  next.truncated = true;
  next.finished = true;
  ASSERT_TRUE(append_results(c, id, 1, "r", next));
  EXPECT_EQ(all_rows(), (std::vector<std::string>{R"(["p"])", R"(["second"])"}));
  EXPECT_EQ(meta(1)["rows"], 1);
  EXPECT_EQ(meta(1)["bytes"], 10);
  EXPECT_EQ(meta(1)["truncated"], true);
  EXPECT_EQ(must(c, {"HGET", keys::job(id), "results:1:columns"}).str, next.columns_json);
}

TEST_F(results_test, AJobThatDoesNotRunKeepsNothingNew) {
  must(c, {"HSET", keys::job(id), "status", "done"});
  auto b = begin_results(c, id, 0, "r");
  ASSERT_FALSE(b);
  EXPECT_EQ(message_of(b.error()), "job status is now done");
  must(c, {"HSET", keys::job(id), "status", "running"});
  ASSERT_TRUE(begin_results(c, id, 0, "r"));
  must(c, {"HSET", keys::job(id), "status", "cancelled"});
  results_batch late;
  late.rows = {R"(["x"])"};
  EXPECT_FALSE(append_results(c, id, 0, "r", late));
  EXPECT_TRUE(all_rows().empty());
}

} // namespace
} // namespace batchq::redis
