// Kept results against a real PostgreSQL (SPEC §11): rows read in text form
// through libpq render as the same CSV that PostgreSQL's own
// `COPY (...) TO STDOUT (FORMAT csv, HEADER)` writes, and as the JSON values
// SPEC §11 gives for each type.
#include "src/job/rows.hpp"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "messages/error.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/test_env.hpp"

namespace batchq::job {
namespace {

using conn_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

/// One query's result as the results route keeps it.
struct kept {
  std::vector<result_column> columns;
  std::vector<result_row> rows;
};

struct pg_rows : ::testing::Test {
  conn_ptr conn{PQconnectdb(batchq::test::pg_conninfo().c_str()), &PQfinish};

  void SetUp() override {
    ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  }

  kept run(const std::string& sql) {
    result_ptr r{PQexec(conn.get(), sql.c_str()), &PQclear};
    kept out;
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r.get());
    for (int c = 0; c < PQnfields(r.get()); ++c)
      out.columns.push_back({PQfname(r.get(), c), PQftype(r.get(), c), ""});
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      result_row row;
      for (int c = 0; c < PQnfields(r.get()); ++c) {
        if (PQgetisnull(r.get(), i, c))
          row.emplace_back(std::nullopt);
        else
          row.emplace_back(std::string{PQgetvalue(r.get(), i, c),
                                       static_cast<size_t>(PQgetlength(r.get(), i, c))});
      }
      out.rows.push_back(std::move(row));
    }
    return out;
  }

  /// What `COPY (sql) TO STDOUT (FORMAT csv, HEADER)` writes.
  std::string copy_csv(const std::string& sql) {
    auto copy = "COPY (" + sql + ") TO STDOUT (FORMAT csv, HEADER)";
    result_ptr r{PQexec(conn.get(), copy.c_str()), &PQclear};
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COPY_OUT) << PQresultErrorMessage(r.get());
    std::string out;
    char* buf = nullptr;
    int n;
    while ((n = PQgetCopyData(conn.get(), &buf, 0)) > 0) {
      out.append(buf, static_cast<size_t>(n));
      PQfreemem(buf);
    }
    result_ptr end{PQgetResult(conn.get()), &PQclear};
    EXPECT_EQ(PQresultStatus(end.get()), PGRES_COMMAND_OK);
    while (PGresult* rest = PQgetResult(conn.get()))
      PQclear(rest);
    return out;
  }

  /// The result rendered as CSV, the way the results route streams it.
  std::string our_csv(const std::string& sql) {
    auto k = run(sql);
    auto out = csv_header(k.columns);
    for (const auto& row : k.rows) {
      auto stored = encode_row(row); // through the stored form, as served
      auto back = decode_row(stored);
      EXPECT_TRUE(back.has_value()) << stored;
      if (back)
        append_csv_row(out, *back);
    }
    return out;
  }

  /// The first row rendered as a JSON array of typed values.
  nlohmann::json first_row_json(const std::string& sql) {
    auto k = run(sql);
    EXPECT_FALSE(k.rows.empty()) << sql;
    if (k.rows.empty())
      return {};
    std::string out = "[";
    for (size_t c = 0; c < k.columns.size(); ++c) {
      if (c > 0)
        out += ',';
      append_json_value(out, k.columns[c].type_oid, k.rows[0][c]);
    }
    out += ']';
    EXPECT_TRUE(nlohmann::json::accept(out)) << out;
    return nlohmann::json::parse(out, nullptr, false);
  }
};

TEST_F(pg_rows, CsvOfAwkwardTextIsByteForByteWhatCopyWrites) {
  const std::string sql =
    "SELECT * FROM (VALUES (1, 'plain', NULL::text), (2, '', 'a,b'), "
    "(3, 'say \"hi\"', E'two\\nlines'), (4, E'cr\\rhere', ' spaced '), "
    "(5, 'üñî€ 日本', E'back\\\\slash'), (6, '\\.', 'it''s')) AS t(\"id\", \"a,b\", \"c\"\"q\")";
  EXPECT_EQ(our_csv(sql), copy_csv(sql));
}

TEST_F(pg_rows, CsvOfEveryTypeIsWhatCopyWrites) {
  const std::string sql =
    "SELECT 1::int2 AS i2, 2147483647::int4 AS i4, 9223372036854775807::int8 AS i8, "
    "1.5::float4 AS f4, 'NaN'::float8 AS f8, 123.4500::numeric AS n, true AS b, "
    "'{\"a\": [1, 2]}'::json AS j, '{\"b\": null}'::jsonb AS jb, ARRAY[1, NULL, 3] AS arr, "
    "ARRAY['x,y', 'q\"'] AS tarr, '2026-12-03 07:00:00+00'::timestamptz AS ts, "
    "'2026-12-03'::date AS d, '\\x00ff'::bytea AS by, NULL::int4 AS nul";
  EXPECT_EQ(our_csv(sql), copy_csv(sql));
}

TEST_F(pg_rows, CsvOfAOneColumnResultQuotesTheEndOfDataMarkerAsCopyDoes) {
  const std::string sql = "SELECT x FROM (VALUES ('\\.'), (''), (NULL)) AS t(x)";
  EXPECT_EQ(our_csv(sql), copy_csv(sql));
}

TEST_F(pg_rows, CsvOfThousandsOfRowsIsWhatCopyWrites) {
  const std::string sql =
    "SELECT g, md5(g::text) || CASE WHEN g % 7 = 0 THEN ',\"' ELSE '' END AS h, "
    "CASE WHEN g % 5 = 0 THEN NULL ELSE g * 1.5 END AS x FROM generate_series(1, 5000) g";
  EXPECT_EQ(our_csv(sql), copy_csv(sql));
}

TEST_F(pg_rows, EachTypeBecomesTheJsonValueTheSpecGives) {
  auto row = first_row_json(
    "SELECT (-32768)::int2, 2147483647::int4, 9007199254740992::int8, 9007199254740993::int8, "
    "(-9223372036854775808)::int8, 1.5::float4, 0.1::float8, 'NaN'::float8, "
    "'-Infinity'::float8, 123.4500::numeric, true, false, '{\"a\": [1, 2.5]}'::json, "
    "'{\"b\": null, \"a\": 1}'::jsonb, E'q\"uote,comma\\nline ü', NULL::int4, "
    "ARRAY[1, NULL, 3], '2026-12-03 07:00:00+00'::timestamptz");
  ASSERT_TRUE(row.is_array()) << row;
  ASSERT_EQ(row.size(), 18u) << row;
  EXPECT_EQ(row[0], -32768);
  EXPECT_EQ(row[1], 2147483647);
  EXPECT_EQ(row[2], 9007199254740992LL);
  EXPECT_EQ(row[3], "9007199254740993");
  EXPECT_EQ(row[4], "-9223372036854775808");
  EXPECT_EQ(row[5], 1.5);
  EXPECT_EQ(row[6], 0.1);
  EXPECT_EQ(row[7], "NaN");
  EXPECT_EQ(row[8], "-Infinity");
  EXPECT_EQ(row[9], "123.4500");
  EXPECT_EQ(row[10], true);
  EXPECT_EQ(row[11], false);
  EXPECT_EQ(row[12], nlohmann::json::parse(R"({"a": [1, 2.5]})"));
  EXPECT_EQ(row[13], nlohmann::json::parse(R"({"a": 1, "b": null})"));
  EXPECT_EQ(row[14], "q\"uote,comma\nline ü");
  EXPECT_TRUE(row[15].is_null());
  EXPECT_EQ(row[16], "{1,NULL,3}");
  EXPECT_TRUE(row[17].is_string()) << row[17];
}

TEST_F(pg_rows, EveryBuiltInTypeNameIsThatOfPgType) {
  std::string oids;
  for (const auto& [oid, name] : builtin_types())
    oids += (oids.empty() ? "" : ",") + std::to_string(oid);
  auto k = run("SELECT oid::int8, typname::text FROM pg_type WHERE oid IN (" + oids + ")");
  ASSERT_EQ(k.rows.size(), builtin_types().size());
  for (const auto& row : k.rows)
    EXPECT_EQ(builtin_type_name(static_cast<uint32_t>(std::stoul(*row[0]))), *row[1]);
  EXPECT_EQ(builtin_type_name(999999), "");
}

// -- a session's row_sink ------------------------------------------------------

/// Records what a session hands over: one entry per statement result.
struct recording_sink : pg::row_sink {
  std::vector<kept> results;
  void begin_result(std::vector<result_column> columns) override {
    results.push_back({std::move(columns), {}});
  }
  void row(result_row r) override {
    ASSERT_FALSE(results.empty()) << "a row before its result began";
    results.back().rows.push_back(std::move(r));
  }
  std::map<uint32_t, std::string> names;
  int namings = 0;
  void type_names(const std::map<uint32_t, std::string>& n) override {
    names = n;
    ++namings;
  }
};

struct pg_row_sink : pg::test::superuser_pool_test {
  recording_sink sink;
  pg::statement_result run(const std::string& sql) {
    auto c = conn();
    auto r = c->execute("job-rows", sql, 0, nullptr, false, &sink);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? *r : pg::statement_result{};
  }
};

TEST_F(pg_row_sink, ASinkGetsTheColumnsThenEveryRowInOrder) {
  auto r = run("SELECT g AS n, g::text AS t, NULL::int4 AS z FROM generate_series(1, 3000) g");
  EXPECT_EQ(r.what, pg::outcome::succeeded);
  EXPECT_EQ(sink.namings, 0) << "every type is built in: no lookup";
  ASSERT_EQ(sink.results.size(), 1u);
  auto& k = sink.results[0];
  EXPECT_EQ(k.columns, (std::vector<result_column>{
                         {"n", 23, "int4"}, {"t", 25, "text"}, {"z", 23, "int4"}}));
  ASSERT_EQ(k.rows.size(), 3000u);
  for (size_t i = 0; i < k.rows.size(); ++i) {
    auto n = std::to_string(i + 1);
    ASSERT_EQ(k.rows[i], (result_row{n, n, std::nullopt})) << i;
  }
}

TEST_F(pg_row_sink, EachStatementOfAStringBeginsItsOwnResultAndOneWithoutRowsAnEmptyOne) {
  auto t = batchq::test::unique_name("bq_rows");
  auto r = run("SELECT 1 AS a; SELECT 'x' AS b, 2.5::numeric AS c FROM generate_series(1, 2); "
               "CREATE TABLE " + t + " (x int); SELECT x FROM " + t + "; DROP TABLE " + t);
  EXPECT_EQ(r.what, pg::outcome::succeeded) << r.error.message;
  ASSERT_EQ(sink.results.size(), 5u);
  EXPECT_EQ(sink.results[0].columns, (std::vector<result_column>{{"a", 23, "int4"}}));
  EXPECT_EQ(sink.results[0].rows, (std::vector<result_row>{{"1"}}));
  EXPECT_EQ(sink.results[1].columns,
            (std::vector<result_column>{{"b", 25, "text"}, {"c", 1700, "numeric"}}));
  EXPECT_EQ(sink.results[1].rows, (std::vector<result_row>{{"x", "2.5"}, {"x", "2.5"}}));
  EXPECT_TRUE(sink.results[2].columns.empty()); // CREATE TABLE
  // A SELECT of no rows still has its columns.
  EXPECT_EQ(sink.results[3].columns, (std::vector<result_column>{{"x", 23, "int4"}}));
  EXPECT_TRUE(sink.results[3].rows.empty());
  EXPECT_TRUE(sink.results[4].columns.empty()); // DROP TABLE: the string's last statement
}

TEST_F(pg_row_sink, AnUnknownTypeIsNamedFromPgTypeAfterTheStatement) {
  auto t = batchq::test::unique_name("bq_mood");
  pg::test::admin_exec("CREATE TYPE " + t + " AS ENUM ('ok', 'sad')");
  auto r = run("SELECT 'sad'::" + t + " AS m");
  EXPECT_EQ(r.what, pg::outcome::succeeded) << r.error.message;
  ASSERT_EQ(sink.results.size(), 1u);
  ASSERT_EQ(sink.results[0].columns.size(), 1u);
  EXPECT_NE(sink.results[0].columns[0].type_oid, 0u);
  EXPECT_EQ(sink.results[0].columns[0].type_name, "");
  EXPECT_EQ(sink.results[0].rows, (std::vector<result_row>{{"sad"}}));
  EXPECT_EQ(sink.namings, 1);
  EXPECT_EQ(sink.names, (std::map<uint32_t, std::string>{
                          {sink.results[0].columns[0].type_oid, t}}));
  pg::test::admin_exec("DROP TYPE " + t);
}

TEST_F(pg_row_sink, WithoutASinkTheRowsAreDroppedAsBefore) {
  auto c = conn();
  auto r = c->execute("job-rows", "SELECT g FROM generate_series(1, 10) g", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, pg::outcome::succeeded);
}

} // namespace
} // namespace batchq::job
