#include "src/job/rows.hpp"

#include <charconv>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace batchq::job {

namespace {

// PostgreSQL's built-in type OIDs (src/include/catalog/pg_type.dat); stable
// across versions.
constexpr uint32_t bool_oid = 16;
constexpr uint32_t int8_oid = 20;
constexpr uint32_t int2_oid = 21;
constexpr uint32_t int4_oid = 23;
constexpr uint32_t json_oid = 114;
constexpr uint32_t float4_oid = 700;
constexpr uint32_t float8_oid = 701;
constexpr uint32_t jsonb_oid = 3802;

/// The largest integer every JSON reader holds exactly (a double's 53 bits).
constexpr int64_t exact_limit = int64_t{1} << 53;

void append_string(std::string& out, std::string_view text) {
  out += nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Whether `x` is a number in JSON's grammar (RFC 8259 §6).
bool is_json_number(std::string_view x) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < x.size() && is_digit(x[i]))
      ++i;
    return i > start;
  };
  if (i < x.size() && x[i] == '-')
    ++i;
  if (i < x.size() && x[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < x.size() && x[i] == '.') {
    ++i;
    if (!digits())
      return false;
  }
  if (i < x.size() && (x[i] == 'e' || x[i] == 'E')) {
    ++i;
    if (i < x.size() && (x[i] == '+' || x[i] == '-'))
      ++i;
    if (!digits())
      return false;
  }
  return i == x.size();
}

bool exact_in_json(std::string_view x) {
  int64_t v = 0;
  auto [end, err] = std::from_chars(x.data(), x.data() + x.size(), v);
  return err == std::errc{} && end == x.data() + x.size() && v >= -exact_limit
         && v <= exact_limit;
}

void append_csv_field(std::string& out, const std::string& x, bool only_column) {
  bool quote = x.empty() || (only_column && x == "\\.")
               || x.find_first_of(",\"\r\n") != std::string::npos;
  if (!quote) {
    out += x;
    return;
  }
  out += '"';
  for (char c : x) {
    if (c == '"')
      out += '"';
    out += c;
  }
  out += '"';
}

} // namespace

const std::vector<std::pair<uint32_t, std::string_view>>& builtin_types() {
  // src/include/catalog/pg_type.dat; OIDs below 10000 never change.
  static const std::vector<std::pair<uint32_t, std::string_view>> table{
    {16, "bool"},       {17, "bytea"},         {18, "char"},       {19, "name"},
    {20, "int8"},       {21, "int2"},          {23, "int4"},       {25, "text"},
    {26, "oid"},        {114, "json"},         {142, "xml"},       {650, "cidr"},
    {700, "float4"},    {701, "float8"},       {790, "money"},     {829, "macaddr"},
    {869, "inet"},      {1042, "bpchar"},      {1043, "varchar"},  {1082, "date"},
    {1083, "time"},     {1114, "timestamp"},   {1184, "timestamptz"}, {1186, "interval"},
    {1266, "timetz"},   {1560, "bit"},         {1562, "varbit"},   {1700, "numeric"},
    {2249, "record"},   {2278, "void"},        {2950, "uuid"},     {3614, "tsvector"},
    {3802, "jsonb"},    {199, "_json"},        {1000, "_bool"},    {1001, "_bytea"},
    {1005, "_int2"},    {1007, "_int4"},       {1009, "_text"},    {1014, "_bpchar"},
    {1015, "_varchar"}, {1016, "_int8"},       {1021, "_float4"},  {1022, "_float8"},
    {1028, "_oid"},     {1115, "_timestamp"},  {1182, "_date"},    {1185, "_timestamptz"},
    {1231, "_numeric"}, {2951, "_uuid"},       {3807, "_jsonb"},
  };
  return table;
}

std::string_view builtin_type_name(uint32_t type_oid) {
  for (const auto& [oid, name] : builtin_types())
    if (oid == type_oid)
      return name;
  return {};
}

std::string encode_row(const result_row& row) {
  std::string out = "[";
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0)
      out += ',';
    if (row[i])
      append_string(out, *row[i]);
    else
      out += "null";
  }
  out += ']';
  return out;
}

std::optional<result_row> decode_row(std::string_view stored) {
  auto doc = nlohmann::json::parse(stored, nullptr, false);
  if (!doc.is_array())
    return std::nullopt;
  result_row row;
  row.reserve(doc.size());
  for (auto& x : doc) {
    if (x.is_null())
      row.emplace_back(std::nullopt);
    else if (x.is_string())
      row.emplace_back(x.get_ref<std::string&>());
    else
      return std::nullopt;
  }
  return row;
}

void append_json_value(std::string& out, uint32_t type_oid, const row_field& field) {
  if (!field) {
    out += "null";
    return;
  }
  const std::string& x = *field;
  switch (type_oid) {
    case bool_oid:
      if (x == "t" || x == "f") {
        out += x == "t" ? "true" : "false";
        return;
      }
      break;
    case int2_oid:
    case int4_oid:
      if (is_json_number(x)) {
        out += x;
        return;
      }
      break;
    case int8_oid:
      if (exact_in_json(x)) {
        out += x;
        return;
      }
      break;
    case float4_oid:
    case float8_oid:
      if (is_json_number(x)) { // not NaN, Infinity, -Infinity
        out += x;
        return;
      }
      break;
    case json_oid:
    case jsonb_oid:
      if (nlohmann::json::accept(x)) {
        out += x;
        return;
      }
      break;
    default:
      break;
  }
  append_string(out, x);
}

void append_csv_row(std::string& out, const result_row& row) {
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0)
      out += ',';
    if (row[i])
      append_csv_field(out, *row[i], row.size() == 1);
  }
  out += '\n';
}

std::string csv_header(const std::vector<result_column>& columns) {
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i > 0)
      out += ',';
    append_csv_field(out, columns[i].name, columns.size() == 1);
  }
  out += '\n';
  return out;
}

std::string page_cursor(size_t next_row) {
  return std::to_string(next_row);
}

std::optional<size_t> parse_page_cursor(std::string_view cursor) {
  size_t v = 0;
  if (cursor.empty() || !is_digit(cursor.front()))
    return std::nullopt;
  auto [end, err] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), v);
  if (err != std::errc{} || end != cursor.data() + cursor.size())
    return std::nullopt;
  return v;
}

} // namespace batchq::job
