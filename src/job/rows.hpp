// Kept results (SPEC §11; docs/results.md): how one row a step returned is
// stored, and how stored rows are rendered for the results route — typed JSON
// values of a page, or CSV lines that read like PostgreSQL's own
// `COPY ... TO STDOUT (FORMAT csv, HEADER)`.
//
// A stored row is a JSON array of PostgreSQL's text forms, `null` for NULL:
// `["1","it's",null]`. One stored form serves both renderings: CSV needs the
// text forms, JSON types them by the column's type at read time. Bytes that
// are not UTF-8 (a SQL_ASCII database) are stored as U+FFFD.
//
// Pure functions on values; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace batchq::job {

/// A column of a kept result: its name and PostgreSQL type (OID and name,
/// e.g. 23 "int4").
struct result_column {
  std::string name;
  uint32_t type_oid = 0;
  std::string type_name;

  friend bool operator==(const result_column& x, const result_column& y) {
    return x.name == y.name && x.type_oid == y.type_oid && x.type_name == y.type_name;
  }
};

/// One field in PostgreSQL's text form; nullopt is SQL NULL.
using row_field = std::optional<std::string>;
using result_row = std::vector<row_field>;

/// PostgreSQL's name (`pg_type.typname`) of a built-in type: "int4" for 23,
/// "_int4" for int4[] (1007), ...; "" for an OID not in batchq's table (a
/// user-defined type, an extension's): look it up in pg_type.
std::string_view builtin_type_name(uint32_t type_oid);

/// The built-in types builtin_type_name knows, as (OID, name).
const std::vector<std::pair<uint32_t, std::string_view>>& builtin_types();

/// The stored form of `row` (see the header comment).
std::string encode_row(const result_row& row);

/// `stored` read back; nullopt when it is not a stored row (a JSON array of
/// strings and nulls).
std::optional<result_row> decode_row(std::string_view stored);

/// Appends the JSON value of a field of type `type_oid` (SPEC §11): NULL →
/// null; bool → true/false; int2, int4, and int8 within ±2^53 → numbers;
/// float4/float8 → numbers (NaN and ±Infinity, which JSON cannot hold, as
/// strings); json/jsonb → the JSON itself; anything else (numeric included,
/// int8 outside ±2^53) → the text form as a JSON string.
void append_json_value(std::string& out, uint32_t type_oid, const row_field& field);

/// Appends `row` as one CSV line ending in "\n", quoted as COPY's CSV format
/// quotes: a field that is empty, holds `,`, `"`, CR or LF, or is `\.` in a
/// one-column result, in double quotes with `"` doubled; NULL as an empty
/// unquoted field.
void append_csv_row(std::string& out, const result_row& row);

/// The CSV header line: the column names, quoted by the same rules.
std::string csv_header(const std::vector<result_column>& columns);

/// The `next` cursor of a page that ends before row `next_row` (0-based).
std::string page_cursor(size_t next_row);

/// The row a cursor points at; nullopt if `cursor` is not one page_cursor
/// makes.
std::optional<size_t> parse_page_cursor(std::string_view cursor);

} // namespace batchq::job
