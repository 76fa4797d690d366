// Log lines: one per event, text or JSON, filtered by level, SQL shortened.
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/log/log.hpp"

using namespace batchq;

TEST(Log, JsonLineCarriesLevelTimestampEventNodeAndFields) {
  auto line = log::format(log::level::info, "job created", {{"user", "ana"}, {"job_id", "j1"}},
                          true, "n1", "2026-11-28T17:36:10.905Z");
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["timestamp"], "2026-11-28T17:36:10.905Z");
  EXPECT_EQ(j["event"], "job created");
  EXPECT_EQ(j["node"], "n1");
  EXPECT_EQ(j["user"], "ana");
  EXPECT_EQ(j["job_id"], "j1");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(Log, TextLineQuotesValuesWithSpaces) {
  auto line = log::format(log::level::warning, "job finished",
                          {{"status", "failed"}, {"reason", "relation \"t\" does not exist"}},
                          false, "n1", "T");
  EXPECT_EQ(line, R"(T warning job finished node=n1 status=failed reason="relation \"t\" does not exist")");
}

TEST(Log, LinesBelowTheLevelAreDropped) {
  std::ostringstream out;
  log::set_sink(&out);
  log::configure(false, log::level::warning, "n1");
  log::info("quiet");
  log::error("loud", {{"user", "ana"}});
  log::set_sink(nullptr);
  log::configure(false, log::level::info, "");
  auto text = out.str();
  EXPECT_EQ(text.find("quiet"), std::string::npos);
  EXPECT_NE(text.find("error loud node=n1 user=ana\n"), std::string::npos);
}

TEST(Log, SqlExcerptKeepsAtMost200Characters) {
  EXPECT_EQ(log::sql_excerpt("select 1"), "select 1");
  auto cut = log::sql_excerpt(std::string(500, 'x'));
  EXPECT_EQ(cut.size(), 200u);
  EXPECT_EQ(cut.substr(197), "...");
  std::string utf8;
  for (int i = 0; i < 150; ++i)
    utf8 += "\xc3\xa9"; // é
  cut = log::sql_excerpt(utf8);
  EXPECT_LE(cut.size(), 200u);
  EXPECT_NO_THROW(nlohmann::json(cut).dump()); // still valid UTF-8
}
