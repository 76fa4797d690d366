// Unit tests for src/pg/conninfo: quoting is checked against libpq's own
// conninfo parser (PQconninfoParse), no server needed.
#include "src/pg/conninfo.hpp"

#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <libpq-fe.h>

using namespace batchq::pg;

namespace {

// libpq's reading of a conninfo string: keyword -> value (set ones only).
std::map<std::string, std::string> parse(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err != nullptr ? err : "?";
    PQfreemem(err);
    ADD_FAILURE() << "libpq rejected the conninfo: " << msg;
    return {};
  }
  std::map<std::string, std::string> out;
  for (auto* o = opts; o->keyword != nullptr; ++o)
    if (o->val != nullptr)
      out[o->keyword] = o->val;
  PQconninfoFree(opts);
  return out;
}

} // namespace

TEST(PgConninfo, EveryValueSurvivesLibpqsParserVerbatim) {
  pool_key key{"db host's", 6543, "my db\\x", "ro'le"};
  std::string password = "p a's\\s w\"o=rd\\'";
  auto kv = parse(make_conninfo(key, password, std::chrono::seconds{7}));
  EXPECT_EQ(kv["host"], "db host's");
  EXPECT_EQ(kv["port"], "6543");
  EXPECT_EQ(kv["dbname"], "my db\\x");
  EXPECT_EQ(kv["user"], "ro'le");
  EXPECT_EQ(kv["password"], password);
  EXPECT_EQ(kv["application_name"], "batchq");
  EXPECT_EQ(kv["connect_timeout"], "7");
}

TEST(PgConninfo, AValueCannotInjectAnotherKeyword) {
  pool_key key{"h", 5432, "db' sslmode='disable", "u"};
  auto kv = parse(make_conninfo(key, "x' host='evil", std::chrono::seconds{10}));
  EXPECT_EQ(kv["host"], "h");
  EXPECT_EQ(kv["dbname"], "db' sslmode='disable");
  EXPECT_EQ(kv.count("sslmode"), 0u);
  EXPECT_EQ(kv["password"], "x' host='evil");
}

TEST(PgConninfo, EmptyPasswordIsOmitted) {
  auto kv = parse(make_conninfo(pool_key{"h", 1, "d", "u"}, "", std::chrono::seconds{10}));
  EXPECT_EQ(kv.count("password"), 0u);
}

TEST(PgConninfo, QuotingEscapesOnlyQuotesAndBackslashes) {
  EXPECT_EQ(quote_conninfo_value(""), "''");
  EXPECT_EQ(quote_conninfo_value("a b"), "'a b'");
  EXPECT_EQ(quote_conninfo_value("it's"), "'it\\'s'");
  EXPECT_EQ(quote_conninfo_value("a\\b"), "'a\\\\b'");
}

TEST(PgConninfo, PoolKeysDifferingInAnyFieldAreDifferent) {
  pool_key a{"h", 5432, "d", "r"};
  std::set<pool_key> keys{a};
  for (auto b : {pool_key{"h2", 5432, "d", "r"}, pool_key{"h", 5433, "d", "r"},
                 pool_key{"h", 5432, "d2", "r"}, pool_key{"h", 5432, "d", "r2"}}) {
    EXPECT_NE(a, b);
    EXPECT_TRUE(keys.insert(b).second);
  }
  EXPECT_FALSE(keys.insert(a).second);
  EXPECT_EQ(to_string(a), "r@h:5432/d");
}

TEST(PgConninfo, ConnectFailureReasonDropsLibpqPreambleAndSeverity) {
  EXPECT_EQ(connect_failure_reason(
              "connection to server at \"127.0.0.1\", port 5433 failed: FATAL:  database "
              "\"nope\" does not exist\n"),
            "database \"nope\" does not exist");
  EXPECT_EQ(connect_failure_reason("connection to server at \"127.0.0.1\", port 1 failed: "
                                   "Connection refused\n\tIs the server running on that host "
                                   "and accepting TCP/IP connections?\n"),
            "Connection refused");
  EXPECT_EQ(connect_failure_reason("could not translate host name \"x.invalid\" to address: "
                                   "Name or service not known\n"),
            "could not translate host name \"x.invalid\" to address: Name or service not known");
  EXPECT_EQ(connect_failure_reason(""), "unknown error");
}

TEST(PgConninfo, FirstLineWithoutSeverityKeepsOrdinaryText) {
  EXPECT_EQ(first_line_without_severity("ERROR:  boom\nLINE 1: x\n  ^\n"), "boom");
  EXPECT_EQ(first_line_without_severity("server closed the connection unexpectedly\n\tThis"),
            "server closed the connection unexpectedly");
  EXPECT_EQ(first_line_without_severity("Note:  lower-case severity is not one"),
            "Note:  lower-case severity is not one");
}
