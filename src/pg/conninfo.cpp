#include "src/pg/conninfo.hpp"

#include <cctype>
#include <tuple>

namespace batchq::pg {

bool operator<(const pool_key& a, const pool_key& b) {
  return std::tie(a.host, a.port, a.dbname, a.role) < std::tie(b.host, b.port, b.dbname, b.role);
}

std::string to_string(const pool_key& key) {
  return key.role + "@" + key.host + ":" + std::to_string(key.port) + "/" + key.dbname;
}

std::string quote_conninfo_value(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out += '\'';
  for (char c : value) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string make_conninfo(const pool_key& key, std::string_view password,
                          std::chrono::seconds connect_timeout) {
  std::string s;
  s.reserve(160 + password.size());
  auto add = [&](const char* name, std::string_view value) {
    if (!s.empty())
      s += ' ';
    s += name;
    s += '=';
    s += quote_conninfo_value(value);
  };
  add("host", key.host);
  add("port", std::to_string(key.port));
  add("dbname", key.dbname);
  add("user", key.role);
  if (!password.empty())
    add("password", password);
  add("application_name", "batchq");
  add("connect_timeout", std::to_string(connect_timeout.count()));
  // A server host that vanishes (no reset, no answer) is noticed by the
  // kernel: probes after 10 s of silence, every 5 s, and unacknowledged data
  // gives up after 30 s (docs/postgres.md, "Timeouts").
  add("keepalives", "1");
  add("keepalives_idle", "10");
  add("keepalives_interval", "5");
  add("keepalives_count", "3");
  add("tcp_user_timeout", "30000");
  return s;
}

namespace {

std::string_view first_line(std::string_view s) {
  auto nl = s.find('\n');
  if (nl != std::string_view::npos)
    s = s.substr(0, nl);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

// Drops "SEVERITY:  " (libpq separates the severity with two spaces; the
// severity is a single upper-case word, possibly localised).
std::string_view strip_severity(std::string_view s) {
  auto pos = s.find(":  ");
  if (pos == std::string_view::npos || pos == 0 || pos > 20)
    return s;
  for (size_t i = 0; i < pos; ++i)
    if (!std::isupper(static_cast<unsigned char>(s[i])))
      return s;
  return s.substr(pos + 3);
}

} // namespace

std::string first_line_without_severity(std::string_view message) {
  auto s = first_line(strip_severity(message));
  if (s.empty())
    return "unknown error";
  return std::string{s};
}

std::string connect_failure_reason(std::string_view libpq_message) {
  auto s = first_line(libpq_message);
  constexpr std::string_view preamble = "connection to server";
  constexpr std::string_view failed = " failed: ";
  if (s.substr(0, preamble.size()) == preamble) {
    auto pos = s.find(failed);
    if (pos != std::string_view::npos)
      s = s.substr(pos + failed.size());
  }
  return first_line_without_severity(s);
}

} // namespace batchq::pg
