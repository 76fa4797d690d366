// Request parsing and validation (SPEC §3.1, §3.2).
#include "src/job/parse.hpp"

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

result<job_request> json_body(const std::string& body) {
  return parse_request(body, "application/json", "");
}

result<job_request> form_body(const std::string& body, const std::string& url = "") {
  return parse_request(body, "application/x-www-form-urlencoded", url);
}

std::string error_of(const result<job_request>& r) {
  if (r)
    return "<accepted>";
  EXPECT_EQ(r.error().kind, problem_kind::invalid_request);
  return r.error().message;
}

TEST(ParseRequest, ReadsTheSimpleShape) {
  auto r = json_body(R"({"query": "UPDATE t SET a = 1"})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::simple);
  ASSERT_EQ(r->steps.size(), 1u);
  EXPECT_EQ(r->steps[0].query, "UPDATE t SET a = 1");
  EXPECT_FALSE(r->steps[0].fallback_status.has_value());
  EXPECT_FALSE(r->onsuccess || r->onerror);
}

TEST(ParseRequest, ReadsTheMultipleShape) {
  auto r = json_body(R"({"query": ["select 1", "select 2"]})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::multiple);
  ASSERT_EQ(r->steps.size(), 2u);
  EXPECT_EQ(r->steps[1].query, "select 2");
}

TEST(ParseRequest, ReadsCartosNestedFallbackShape) {
  auto r = json_body(R"({"query": {"query": [
      {"query": "select 1", "onsuccess": "s1", "onerror": "e1", "timeout": 1000, "id": "a:b:c"},
      {"query": "select 2"}], "onsuccess": "js", "onerror": "je"}})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::nested);
  ASSERT_EQ(r->steps.size(), 2u);
  const auto& s = r->steps[0];
  EXPECT_EQ(s.onsuccess, "s1");
  EXPECT_EQ(s.onerror, "e1");
  EXPECT_EQ(s.timeout_ms, 1000);
  EXPECT_EQ(s.id, "a:b:c");
  EXPECT_EQ(s.fallback_status, status::pending);
  EXPECT_FALSE(r->steps[1].fallback_status.has_value());
  EXPECT_EQ(r->onsuccess, "js");
  EXPECT_EQ(r->onerror, "je");
}

TEST(ParseRequest, ReadsTheUnifiedShapeMixingStringsAndStepObjects) {
  auto r = json_body(R"({"query": [{"query": "select 1", "onsuccess": "s1", "onerror": "e1"},
      "select 2"], "onsuccess": "js", "onerror": "je"})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::unified);
  ASSERT_EQ(r->steps.size(), 2u);
  EXPECT_EQ(r->steps[0].onerror, "e1");
  EXPECT_EQ(r->steps[1].query, "select 2");
  EXPECT_EQ(r->onsuccess, "js");
  EXPECT_EQ(r->onerror, "je");
}

TEST(ParseRequest, AcceptsJobFallbacksOnTheSimpleAndMultipleShapes) {
  auto simple = json_body(R"({"query": "update t", "onsuccess": "s", "onerror": "e"})");
  ASSERT_TRUE(simple) << error_of(simple);
  EXPECT_EQ(simple->shape, shape::simple);
  EXPECT_EQ(simple->onsuccess, "s");
  EXPECT_EQ(simple->onerror, "e");
  auto multiple = json_body(R"({"query": ["a", "b"], "onerror": "e"})");
  ASSERT_TRUE(multiple) << error_of(multiple);
  EXPECT_EQ(multiple->shape, shape::multiple);
  EXPECT_EQ(multiple->onerror, "e");
}

TEST(ParseRequest, IgnoresClientSentStatusesAndUnknownFields) {
  auto r = json_body(R"({"query": {"query": [{"query": "q", "onerror": "e",
      "status": "done", "fallback_status": "done", "started_at": "x", "failed_reason": "x"}]},
      "status": "done", "job_id": "mine", "fallback_status": "done", "host": "evil", "x": 1})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->steps[0].status, status::pending);
  EXPECT_EQ(r->steps[0].fallback_status, status::pending);
  EXPECT_FALSE(r->steps[0].started_at || r->steps[0].failed_reason);
}

TEST(ParseRequest, TreatsNullAndEmptyFallbacksAsAbsent) {
  auto r = json_body(R"({"query": [{"query": "q", "onsuccess": null, "onerror": ""}],
      "onsuccess": null})");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_FALSE(r->steps[0].has_fallback());
  EXPECT_FALSE(r->steps[0].fallback_status.has_value());
  EXPECT_FALSE(r->onsuccess.has_value());
}

TEST(Validation, AMissingNullOrEmptyQueryIsNotAValidSql) {
  for (auto body : {R"({})", R"({"query": null})", R"({"query": ""})", R"({"query": []})",
                    R"({"query": {"query": []}})", R"({"q": "select 1"})", R"([1, 2])",
                    R"("select 1")", R"(42)", ""})
    EXPECT_EQ(error_of(json_body(body)), "You must indicate a valid SQL") << body;
}

TEST(Validation, ANonJobShapeHasNoJobClass) {
  for (auto body :
       {R"({"query": 42})", R"({"query": true})", R"({"query": {"a": 1}})",
        R"({"query": {"query": "select 1"}})", R"({"query": ["a", 1]})", R"({"query": ["a", ""]})",
        R"({"query": ["a", {"query": ""}]})", R"({"query": [{"onsuccess": "x"}]})",
        R"({"query": [["a"]]})", R"({"query": {"query": [{"query": 1}]}})"})
    EXPECT_EQ(error_of(json_body(body)), "there is no job class for the provided query") << body;
}

TEST(Validation, AFallbackOfTheWrongTypeIsNamedByItsPath) {
  EXPECT_EQ(error_of(json_body(R"({"query": ["a", {"query": "b", "onerror": 1}]})")),
            "query[1].onerror must be a string");
  EXPECT_EQ(error_of(json_body(R"({"query": [{"query": "b", "onsuccess": ["x"]}]})")),
            "query[0].onsuccess must be a string");
  EXPECT_EQ(error_of(json_body(
                R"({"query": {"query": [{"query": "a"}, {"query": "b", "onerror": {}}]}})")),
            "query.query[1].onerror must be a string");
  EXPECT_EQ(error_of(json_body(R"({"query": {"query": [{"query": "a"}], "onsuccess": 3}})")),
            "query.onsuccess must be a string");
  EXPECT_EQ(error_of(json_body(R"({"query": "a", "onerror": false})")), "onerror must be a string");
  EXPECT_EQ(error_of(json_body(R"({"query": [{"query": "a", "id": 7}]})")),
            "query[0].id must be a string");
}

TEST(Validation, ATimeoutOfTheWrongTypeIsNamedByItsPath) {
  EXPECT_EQ(error_of(json_body(R"({"query": {"query": [{"query": "a", "timeout": "1000"}]}})")),
            "query.query[0].timeout must be a number");
  EXPECT_EQ(error_of(json_body(R"({"query": ["x", {"query": "a", "timeout": -1}]})")),
            "query[1].timeout must be a non-negative integer");
  EXPECT_EQ(error_of(json_body(R"({"query": [{"query": "a", "timeout": 1.5}]})")),
            "query[0].timeout must be a non-negative integer");
  auto zero = json_body(R"({"query": [{"query": "a", "timeout": 0}]})");
  ASSERT_TRUE(zero) << error_of(zero);
  EXPECT_EQ(zero->steps[0].timeout_ms, 0);
}

TEST(Validation, MoreThanAThousandStepsAreTooMany) {
  nlohmann::json many = nlohmann::json::array();
  for (int i = 0; i < 1000; ++i)
    many.push_back("select 1");
  EXPECT_TRUE(json_body(nlohmann::json{{"query", many}}.dump()));
  many.push_back("select 1");
  EXPECT_EQ(error_of(json_body(nlohmann::json{{"query", many}}.dump())),
            "too many queries: 1001 (max 1000)");
  nlohmann::json nested{{"query", {{"query", nlohmann::json::array()}}}};
  for (int i = 0; i < 1002; ++i)
    nested["query"]["query"].push_back({{"query", "q"}});
  EXPECT_EQ(error_of(json_body(nested.dump())), "too many queries: 1002 (max 1000)");
}

TEST(Validation, MalformedJsonIsReportedWithItsPosition) {
  EXPECT_EQ(error_of(json_body(R"({"query": "a",)")), "Invalid JSON body: syntax error at byte 15");
}

TEST(Validation, ANumberBeyondADoubleIsA400NotAnException) {
  EXPECT_EQ(error_of(json_body(R"({"query": 1e999999})")),
            "Invalid JSON body: number out of range: 1e999999");
  EXPECT_EQ(error_of(json_body(R"({"query": "select 1", "timeout": -1e400})")),
            "Invalid JSON body: number out of range: -1e400");
  // A long integer is a double, not an error; timeout then says what is wrong.
  EXPECT_EQ(error_of(json_body(
              R"({"query": [{"query": "a", "timeout": 123456789012345678901234567890}]})")),
            "query[0].timeout must be a non-negative integer");
}

TEST(Validation, FormBytesThatAreNotStrictUtf8AreRefused) {
  for (const char* bad : {"query=%C0%AF", "query=%ED%A0%80", "query=%F4%90%80%80", "query=%E0%80%AF"})
    EXPECT_EQ(error_of(form_body(bad)), "query must be valid UTF-8") << bad;
  EXPECT_TRUE(form_body("query=%F0%9F%98%80")); // U+1F600
  EXPECT_TRUE(form_body("query=%EF%BF%BD"));    // U+FFFD
}

TEST(Validation, NestingDeeperThan64LevelsIsRefusedWithItsPosition) {
  std::string ok = R"({"query": "a", "x": )" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_TRUE(json_body(ok)) << ok;
  std::string deep = R"({"query": "a", "x": )" + std::string(100000, '[');
  EXPECT_EQ(error_of(json_body(deep)), "Invalid JSON body: nested deeper than 64 levels at byte 84");
  // Brackets inside strings (escaped quotes included) do not count.
  std::string quoted = R"({"query": "\"[[[)" + std::string(100, '{') + R"("})";
  EXPECT_TRUE(json_body(quoted)) << quoted;
}

TEST(Validation, JobFallbacksOutsideTheNestedFormAreRefused) {
  EXPECT_EQ(error_of(json_body(R"({"query": {"query": [{"query": "a"}]}, "onerror": "e"})")),
            "onerror must be inside query for the nested form");
}

TEST(FormBody, ReadsTheSimpleShape) {
  auto r = form_body("query=SELECT+*+FROM+untitle_table_4&api_key=1234");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::simple);
  EXPECT_EQ(r->steps[0].query, "SELECT * FROM untitle_table_4");
}

TEST(FormBody, ReadsTheMultipleShape) {
  auto r = form_body("query%5B0%5D=select+1&query%5B1%5D=select+%27x%27");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::multiple);
  ASSERT_EQ(r->steps.size(), 2u);
  EXPECT_EQ(r->steps[1].query, "select 'x'");
}

TEST(FormBody, ReadsTheNestedShapeWithATimeoutInDigits) {
  auto r = form_body("query[query][0][query]=select+1&query[query][0][onerror]=select+2"
                     "&query[query][0][timeout]=1500&query[onsuccess]=select+3");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::nested);
  EXPECT_EQ(r->steps[0].onerror, "select 2");
  EXPECT_EQ(r->steps[0].timeout_ms, 1500);
  EXPECT_EQ(r->onsuccess, "select 3");
  EXPECT_EQ(error_of(form_body("query[query][0][query]=a&query[query][0][timeout]=soon")),
            "query.query[0].timeout must be a number");
}

TEST(FormBody, ReadsTheUnifiedShapeWithTopLevelFallbacks) {
  auto r = form_body("query[0][query]=select+1&query[0][onerror]=e1&query[1]=select+2"
                     "&onsuccess=js&onerror=je");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->shape, shape::unified);
  EXPECT_EQ(r->steps[0].onerror, "e1");
  EXPECT_EQ(r->steps[1].query, "select 2");
  EXPECT_EQ(r->onsuccess, "js");
  EXPECT_EQ(r->onerror, "je");
}

TEST(FormBody, ValidatesLikeJson) {
  EXPECT_EQ(error_of(form_body("")), "You must indicate a valid SQL");
  EXPECT_EQ(error_of(form_body("q=SELECT+1")), "You must indicate a valid SQL");
  EXPECT_EQ(error_of(form_body("query=")), "You must indicate a valid SQL");
  EXPECT_EQ(error_of(form_body("query[x]=1")), "there is no job class for the provided query");
  EXPECT_EQ(error_of(form_body("query=%FF%FE")), "query must be valid UTF-8");
}

TEST(UrlQuery, SuppliesTheQueryWhenTheBodyHasNone) {
  auto r = parse_request("", "", "api_key=k&query=select+1");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->steps[0].query, "select 1");
  auto also = form_body("api_key=k", "query[0]=a&query[1]=b");
  ASSERT_TRUE(also) << error_of(also);
  EXPECT_EQ(also->shape, shape::multiple);
}

TEST(UrlQuery, IsOverriddenByTheBody) {
  auto r = parse_request(R"({"query": "from body"})", "application/json; charset=utf-8",
                         "query=from+url&onerror=from+url");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->steps[0].query, "from body");
  EXPECT_EQ(r->onerror, "from url");
}

TEST(RequestFields, SniffsABodyWithoutContentTypeAndIgnoresOtherTypes) {
  auto json_like = parse_request(R"({"query": "a"})", "", "");
  ASSERT_TRUE(json_like) << error_of(json_like);
  EXPECT_EQ(json_like->steps[0].query, "a");
  auto form_like = parse_request("query=b", "", "");
  ASSERT_TRUE(form_like) << error_of(form_like);
  EXPECT_EQ(form_like->steps[0].query, "b");
  EXPECT_EQ(error_of(parse_request("query=b", "text/plain", "")), "You must indicate a valid SQL");
}

TEST(RequestFields, ExposesOtherFieldsSuchAsTheApiKey) {
  auto f =
      request_fields("api_key=secret&query=x", "application/x-www-form-urlencoded", "map_key=m");
  ASSERT_TRUE(f);
  EXPECT_EQ((*f)["api_key"], "secret");
  EXPECT_EQ((*f)["map_key"], "m");
}

} // namespace
} // namespace batchq::job
