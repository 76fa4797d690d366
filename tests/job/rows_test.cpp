// Kept results (SPEC §11): the stored row form, typed JSON values, CSV lines
// and page cursors. The same renderings against a real PostgreSQL (its COPY
// CSV, its type output) are in tests/pg/rows_test.cpp.
#include "src/job/rows.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace batchq::job {
namespace {

std::string json_of(uint32_t oid, row_field f) {
  std::string out;
  append_json_value(out, oid, f);
  return out;
}

std::string csv_of(const result_row& row) {
  std::string out;
  append_csv_row(out, row);
  return out;
}

TEST(Rows, AStoredRowKeepsTextFormsAndNullsAndReadsBackTheSame) {
  result_row row{"1", std::nullopt, "", "it's \"q\", a\nb", "ü€", "\\x00ff"};
  auto stored = encode_row(row);
  EXPECT_EQ(stored, R"(["1",null,"","it's \"q\", a\nb","ü€","\\x00ff"])");
  EXPECT_EQ(decode_row(stored), row);
  EXPECT_EQ(decode_row("[]"), result_row{});
}

TEST(Rows, BytesThatAreNotUtf8AreStoredAsTheReplacementCharacter) {
  auto stored = encode_row({std::string{"a\xff" "b"}});
  EXPECT_EQ(decode_row(stored), (result_row{"a\xEF\xBF\xBD" "b"}));
}

TEST(Rows, WhatIsNotAStoredRowIsRefused) {
  for (const char* bad : {"", "{}", "[1]", "[\"a\",true]", "[\"a\"", "\"a\"", "[[\"a\"]]"})
    EXPECT_FALSE(decode_row(bad)) << bad;
}

TEST(Rows, NullIsNullForEveryType) {
  for (uint32_t oid : {16u, 20u, 21u, 23u, 25u, 114u, 700u, 701u, 1700u, 3802u})
    EXPECT_EQ(json_of(oid, std::nullopt), "null") << oid;
}

TEST(Rows, BooleansAndSmallIntegersAreJsonValues) {
  EXPECT_EQ(json_of(16, "t"), "true");
  EXPECT_EQ(json_of(16, "f"), "false");
  EXPECT_EQ(json_of(21, "-32768"), "-32768");
  EXPECT_EQ(json_of(23, "2147483647"), "2147483647");
  EXPECT_EQ(json_of(23, "0"), "0");
}

TEST(Rows, Int8IsANumberWithinTwoToThe53AndAStringOutside) {
  EXPECT_EQ(json_of(20, "9007199254740992"), "9007199254740992");
  EXPECT_EQ(json_of(20, "-9007199254740992"), "-9007199254740992");
  EXPECT_EQ(json_of(20, "9007199254740993"), "\"9007199254740993\"");
  EXPECT_EQ(json_of(20, "-9223372036854775808"), "\"-9223372036854775808\"");
  EXPECT_EQ(json_of(20, "42"), "42");
}

TEST(Rows, FloatsAreNumbersExceptWhatJsonCannotHold) {
  EXPECT_EQ(json_of(701, "1.5"), "1.5");
  EXPECT_EQ(json_of(701, "-0"), "-0");
  EXPECT_EQ(json_of(701, "1e+100"), "1e+100");
  EXPECT_EQ(json_of(700, "1.2345e-05"), "1.2345e-05");
  EXPECT_EQ(json_of(701, "NaN"), "\"NaN\"");
  EXPECT_EQ(json_of(701, "Infinity"), "\"Infinity\"");
  EXPECT_EQ(json_of(700, "-Infinity"), "\"-Infinity\"");
}

TEST(Rows, NumericAndTextAndEverythingElseAreStrings) {
  EXPECT_EQ(json_of(1700, "3.14159265358979323846264338327950288"),
            "\"3.14159265358979323846264338327950288\"");
  EXPECT_EQ(json_of(25, "say \"hi\"\n\tback\\slash"), R"("say \"hi\"\n\tback\\slash")");
  EXPECT_EQ(json_of(1184, "2026-12-03 07:00:00+00"), "\"2026-12-03 07:00:00+00\"");
  EXPECT_EQ(json_of(1007, "{1,2,NULL}"), "\"{1,2,NULL}\""); // int4[]
  EXPECT_EQ(json_of(25, std::string{"\x01"}), "\"\\u0001\"");
}

TEST(Rows, JsonColumnsAreTheJsonItself) {
  EXPECT_EQ(json_of(3802, R"({"a": [1, 2.5, null], "b": "x"})"),
            R"({"a": [1, 2.5, null], "b": "x"})");
  EXPECT_EQ(json_of(114, "123456789012345678901234567890"), "123456789012345678901234567890");
  EXPECT_EQ(json_of(114, "\"s\""), "\"s\"");
  // Never text that would break the page: not JSON → a string.
  EXPECT_EQ(json_of(114, "{broken"), "\"{broken\"");
}

TEST(Rows, EveryRenderedValueIsValidJson) {
  for (auto [oid, text] : std::vector<std::pair<uint32_t, std::string>>{
         {16, "x"}, {21, "1x"}, {23, ""}, {20, "+5"}, {701, ".5"}, {701, "1."}, {700, "01"}}) {
    auto out = json_of(oid, text);
    EXPECT_TRUE(nlohmann::json::accept(out)) << oid << " " << text << " -> " << out;
    EXPECT_EQ(out.front(), '"') << "not a well-formed " << oid << ": a string";
  }
}

TEST(Rows, CsvQuotesAsPostgresCopyDoes) {
  EXPECT_EQ(csv_of({"1", "abc", std::nullopt, ""}), "1,abc,,\"\"\n");
  EXPECT_EQ(csv_of({"a,b", "say \"hi\"", "x\ny", "cr\r"}),
            "\"a,b\",\"say \"\"hi\"\"\",\"x\ny\",\"cr\r\"\n");
  EXPECT_EQ(csv_of({" lead", "tail ", "ü"}), " lead,tail ,ü\n");
  // The end-of-data marker is quoted only when it would stand alone on a line.
  EXPECT_EQ(csv_of({"\\."}), "\"\\.\"\n");
  EXPECT_EQ(csv_of({"\\.", "x"}), "\\.,x\n");
  EXPECT_EQ(csv_of({std::nullopt}), "\n");
}

TEST(Rows, TheCsvHeaderQuotesNamesByTheSameRules) {
  std::vector<result_column> cols{{"id", 23, "int4"}, {"a,b", 25, "text"}, {"?column?", 25, "text"}};
  EXPECT_EQ(csv_header(cols), "id,\"a,b\",?column?\n");
}

TEST(Rows, ACursorNamesTheNextRowAndNothingElseIsOne) {
  EXPECT_EQ(parse_page_cursor(page_cursor(0)), 0u);
  EXPECT_EQ(parse_page_cursor(page_cursor(1000)), 1000u);
  for (const char* bad : {"", "-1", "+1", "1x", " 1", "x", "99999999999999999999999"})
    EXPECT_FALSE(parse_page_cursor(bad)) << bad;
}

} // namespace
} // namespace batchq::job
