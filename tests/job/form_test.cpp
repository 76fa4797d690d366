// Form-encoded bodies and URL query strings read as CARTO's Express reads them.
#include "src/job/form.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

using nlohmann::json;

TEST(UrlDecode, TurnsPlusIntoSpaceAndPercentEscapesIntoBytes) {
  EXPECT_EQ(url_decode("SELECT+*+FROM+t%20WHERE+a%3D%27x%27"), "SELECT * FROM t WHERE a='x'");
  EXPECT_EQ(url_decode("%e2%9c%93"), "\xe2\x9c\x93");
}

TEST(UrlDecode, KeepsAPercentThatIsNotAnEscape) {
  EXPECT_EQ(url_decode("100%"), "100%");
  EXPECT_EQ(url_decode("%zz%4"), "%zz%4");
}

TEST(ParseForm, ReadsPlainFields) {
  EXPECT_EQ(parse_form("query=select+1&api_key=k"),
            (json{{"query", "select 1"}, {"api_key", "k"}}));
  EXPECT_EQ(parse_form("flag&=x&&"), (json{{"flag", ""}}));
}

TEST(ParseForm, ReadsIndexedKeysAsAnArrayInIndexOrder) {
  EXPECT_EQ(parse_form("query[1]=b&query[0]=a"), (json{{"query", {"a", "b"}}}));
  EXPECT_EQ(parse_form("query%5B0%5D=a&query%5B1%5D=b"), (json{{"query", {"a", "b"}}}));
}

TEST(ParseForm, AppendsEmptyBracketsAndRepeatedKeys) {
  EXPECT_EQ(parse_form("query[]=a&query[]=b"), (json{{"query", {"a", "b"}}}));
  EXPECT_EQ(parse_form("query=a&query=b&query=c"), (json{{"query", {"a", "b", "c"}}}));
}

TEST(ParseForm, KeepsBracketsPastFiveLevelsAsOneKeyAsQsDoes) {
  EXPECT_EQ(parse_form("a[b][c][d][e][f][g][h][i]=j"),
            (json::parse(R"({"a":{"b":{"c":{"d":{"e":{"f":{"[g][h][i]":"j"}}}}}}})")));
}

TEST(ParseForm, AppendsInLinearTime) {
  // 200,000 appends: quadratic (the old next-index scan) takes minutes, linear
  // well under a second; the bound leaves 20x for a loaded machine.
  std::string body;
  for (int i = 0; i < 200000; ++i)
    body += i ? "&query[]=a" : "query[]=a";
  auto t0 = std::chrono::steady_clock::now();
  auto f = parse_form(body);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(f["query"].size(), 200000u);
  EXPECT_LT(took, std::chrono::seconds{20});
  std::string repeated;
  for (int i = 0; i < 200000; ++i)
    repeated += i ? "&q=a" : "q=a";
  EXPECT_EQ(parse_form(repeated)["q"].size(), 200000u);
}

TEST(ParseForm, MarkerLikeKeysFromTheClientCannotBreakTheParser) {
  EXPECT_EQ(parse_form("query[%01next]=x&query[]=a&query[]=b"),
            (json{{"query", {"a", "b"}}}));
  EXPECT_EQ(parse_form("q[%01next]=x&q[%01append]=y"), (json{{"q", json::object()}}));
}

TEST(ParseForm, CompactsSparseIndexes) {
  EXPECT_EQ(parse_form("query[7]=b&query[3]=a"), (json{{"query", {"a", "b"}}}));
}

TEST(ParseForm, ReadsCartosNestedFallbackKeys) {
  auto x = parse_form("query[query][0][query]=select+1&query[query][0][onerror]=select+2"
                      "&query[query][1][query]=select+3&query[onsuccess]=select+4");
  json expected = {
      {"query",
       {{"query", {{{"query", "select 1"}, {"onerror", "select 2"}}, {{"query", "select 3"}}}},
        {"onsuccess", "select 4"}}}};
  EXPECT_EQ(x, expected);
}

TEST(ParseForm, KeepsTheFirstOfTwoConflictingPairs) {
  EXPECT_EQ(parse_form("query=a&query[0]=b"), (json{{"query", "a"}}));
  EXPECT_EQ(parse_form("query[0]=b&query=a"), (json{{"query", {"b"}}}));
}

TEST(ParseForm, KeepsAnObjectThatMixesIndexesAndNames) {
  EXPECT_EQ(parse_form("query[0]=a&query[x]=b"), (json{{"query", {{"0", "a"}, {"x", "b"}}}}));
}

TEST(ParseForm, TakesAKeyWithUnbalancedBracketsLiterally) {
  EXPECT_EQ(parse_form("query[0=a"), (json{{"query[0", "a"}}));
}

} // namespace
} // namespace batchq::job
