#include "src/cli/format.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

namespace batchq::cli {

namespace {

using nlohmann::json;

/// j[key] when it is a string, else "".
std::string str(const json& j, const char* key) {
  if (!j.is_object())
    return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

bool digits(const std::string& s, size_t pos, size_t n) {
  if (pos + n > s.size())
    return false;
  for (size_t i = pos; i < pos + n; ++i)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

int num(const std::string& s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i)
    v = v * 10 + (s[i] - '0');
  return v;
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/// Number of UTF-8 code points (bytes that are not continuation bytes).
size_t width(const std::string& s) {
  return static_cast<size_t>(std::count_if(
    s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string pad(const std::string& s, size_t w) {
  auto n = width(s);
  return n >= w ? s : s + std::string(w - n, ' ');
}

/// The steps of a job object (see job_view).
std::vector<step_view> steps_of(const json& steps) {
  std::vector<step_view> out;
  if (!steps.is_array())
    return out;
  for (const auto& s : steps) {
    step_view v;
    if (s.is_string()) {
      v.query = s.get<std::string>();
    } else if (s.is_object()) {
      v.query = str(s, "query");
      v.status = str(s, "status");
      v.failed_reason = str(s, "failed_reason");
      v.onsuccess = str(s, "onsuccess");
      v.onerror = str(s, "onerror");
      v.fallback_status = str(s, "fallback_status");
      v.fallback_failed_reason = str(s, "fallback_failed_reason");
      v.started_at = str(s, "started_at");
      v.ended_at = str(s, "ended_at");
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::optional<int64_t> between(const std::string& from, const std::string& to) {
  auto a = parse_time_ms(from);
  auto b = parse_time_ms(to);
  if (!a || !b)
    return std::nullopt;
  return *b - *a;
}

std::string duration_or_empty(std::optional<int64_t> ms) {
  return ms ? format_duration(*ms) : std::string{};
}

/// The SQL of every step joined with "; " (for one table cell).
std::string joined_sql(const job_view& v) {
  std::string out;
  for (const auto& s : v.steps)
    out += (out.empty() ? "" : "; ") + one_line(s.query, 0);
  return out;
}

/// Column widths and times of the step rows shared by get and watch, e.g.
/// "  1  done     0.2s  SELECT 1".
struct step_rows {
  size_t num_w = 1;
  size_t status_w = 7; // "pending"
  size_t time_w = 0;
  std::vector<std::string> times;
};

step_rows layout(const job_view& job, std::optional<int64_t> now_ms) {
  step_rows r;
  r.num_w = std::to_string(job.steps.size()).size();
  for (const auto& s : job.steps) {
    r.status_w = std::max(r.status_w, width(s.status));
    std::optional<int64_t> t;
    if (job.simple)
      t = job_elapsed_ms(job, now_ms);
    else
      t = step_elapsed_ms(s, now_ms);
    r.times.push_back(duration_or_empty(t));
    r.time_w = std::max(r.time_w, r.times.back().size());
  }
  // Most durations are 4-5 wide (`1.0s`, `850ms`, `4m05s`): a steady column
  // keeps the SQL from jumping while watch redraws.
  if (r.time_w > 0)
    r.time_w = std::max<size_t>(r.time_w, 5);
  return r;
}

std::string row(const step_rows& r, size_t i, const std::string& status, const std::string& sql) {
  auto n = std::to_string(i + 1);
  std::string line =
    "  " + std::string(r.num_w - n.size(), ' ') + n + "  " + pad(status, r.status_w) + "  ";
  if (r.time_w > 0)
    line += pad(r.times[i], r.time_w) + "  ";
  return line + sql;
}

/// The indentation of a step's detail lines: under the status column.
std::string detail_indent(const step_rows& r) {
  return std::string(2 + r.num_w + 2, ' ');
}

/// The detail lines of a step's (or job's) fallbacks; none when it has none.
void fallback_lines(std::ostringstream& out, const std::string& indent,
                    const std::string& onsuccess, const std::string& onerror,
                    const std::string& fallback_status,
                    const std::string& fallback_failed_reason) {
  if (!onsuccess.empty())
    out << indent << "onsuccess: " << one_line(onsuccess, 0) << "\n";
  if (!onerror.empty())
    out << indent << "onerror: " << one_line(onerror, 0) << "\n";
  if (!fallback_status.empty())
    out << indent << "fallback: " << fallback_status << "\n";
  if (!fallback_failed_reason.empty())
    out << indent << "fallback error: " << one_line(fallback_failed_reason, 0) << "\n";
}

} // namespace

namespace {

std::string result_text(const nlohmann::json& v) {
  if (v.is_string())
    return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string tsv_escape(const std::string& x) {
  std::string out;
  for (char c : x) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

/// Display width in code points (UTF-8 continuation bytes do not count).
size_t width_of(const std::string& x) {
  size_t n = 0;
  for (unsigned char c : x)
    n += (c & 0xC0) != 0x80;
  return n;
}

} // namespace

std::string render_result_rows(const nlohmann::json& columns,
                               const std::vector<nlohmann::json>& rows, bool table) {
  std::vector<std::string> names;
  if (columns.is_array())
    for (const auto& c : columns)
      names.push_back(c.is_object() ? c.value("name", "") : std::string{});
  auto cell = [&](const nlohmann::json& row, size_t i) -> std::string {
    if (!row.is_array() || i >= row.size())
      return {};
    const auto& v = row[i];
    if (v.is_null())
      return table ? "NULL" : "\\N";
    return table ? one_line(result_text(v), 40) : tsv_escape(result_text(v));
  };
  std::string out;
  if (!table) {
    for (size_t i = 0; i < names.size(); ++i)
      out += (i ? "\t" : "") + tsv_escape(names[i]);
    out += '\n';
    for (const auto& row : rows) {
      for (size_t i = 0; i < names.size(); ++i)
        out += (i ? "\t" : "") + cell(row, i);
      out += '\n';
    }
    return out;
  }
  std::vector<size_t> widths;
  for (const auto& n : names)
    widths.push_back(width_of(n));
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : rows) {
    cells.emplace_back();
    for (size_t i = 0; i < names.size(); ++i) {
      cells.back().push_back(cell(row, i));
      widths[i] = std::max(widths[i], width_of(cells.back().back()));
    }
  }
  auto line = [&](const std::vector<std::string>& xs) {
    std::string l;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (i)
        l += "  ";
      l += xs[i];
      if (i + 1 < xs.size())
        l += std::string(widths[i] - width_of(xs[i]), ' ');
    }
    return l + "\n";
  };
  out += line(names);
  std::vector<std::string> rule;
  for (auto w : widths)
    rule.push_back(std::string(w, '-'));
  out += line(rule);
  for (const auto& c : cells)
    out += line(c);
  out += "(" + std::to_string(rows.size()) + (rows.size() == 1 ? " row" : " rows") + ")\n";
  return out;
}

bool is_final_status(const std::string& status) {
  return status == "done" || status == "failed" || status == "cancelled" || status == "unknown";
}

std::optional<int64_t> parse_time_ms(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SS[.f+](Z|+00:00)
  if (!digits(s, 0, 4) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-'
      || !digits(s, 8, 2) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2)
      || s[13] != ':' || !digits(s, 14, 2) || s[16] != ':' || !digits(s, 17, 2))
    return std::nullopt;
  int y = num(s, 0, 4), mo = num(s, 5, 2), d = num(s, 8, 2);
  int h = num(s, 11, 2), mi = num(s, 14, 2), sec = num(s, 17, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start)
      return std::nullopt;
  }
  auto zone = s.substr(pos);
  if (zone != "Z" && zone != "z" && zone != "+00:00" && zone != "+0000")
    return std::nullopt;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + ms;
}

std::string format_duration(int64_t ms) {
  if (ms < 0)
    ms = 0;
  char buf[32];
  if (ms < 1000)
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  else if (ms < 60'000)
    std::snprintf(buf, sizeof buf, "%lld.%llds", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000 / 100));
  else if (ms < 3'600'000)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms % 60'000 / 1000));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms % 3'600'000 / 60'000));
  return buf;
}

std::string one_line(const std::string& sql, size_t max_chars) {
  std::string flat;
  flat.reserve(sql.size());
  bool space = false;
  for (char c : sql) {
    if (is_space(c)) {
      space = true;
      continue;
    }
    if (space && !flat.empty())
      flat += ' ';
    space = false;
    flat += c;
  }
  if (max_chars == 0 || width(flat) <= max_chars)
    return flat;
  size_t keep = max_chars > 3 ? max_chars - 3 : max_chars;
  // Cut before the code point number `keep` (never inside a UTF-8 sequence).
  size_t points = 0, i = 0;
  for (; i < flat.size(); ++i) {
    if ((static_cast<unsigned char>(flat[i]) & 0xC0) != 0x80) {
      if (points == keep)
        break;
      ++points;
    }
  }
  auto out = flat.substr(0, i);
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return max_chars > 3 ? out + "..." : out;
}

job_view to_view(const json& j) {
  job_view v;
  if (!j.is_object())
    return v;
  v.job_id = str(j, "job_id");
  v.user = str(j, "user");
  v.status = str(j, "status");
  v.created_at = str(j, "created_at");
  v.updated_at = str(j, "updated_at");
  v.failed_reason = str(j, "failed_reason");
  v.onsuccess = str(j, "onsuccess");
  v.onerror = str(j, "onerror");
  v.fallback_status = str(j, "fallback_status");
  v.fallback_failed_reason = str(j, "fallback_failed_reason");
  auto q = j.find("query");
  if (q == j.end())
    return v;
  if (q->is_string()) {
    v.simple = true;
    step_view s;
    s.query = q->get<std::string>();
    s.status = v.status;
    s.failed_reason = v.failed_reason;
    v.steps.push_back(std::move(s));
  } else if (q->is_array()) {
    v.steps = steps_of(*q);
  } else if (q->is_object()) {
    // CARTO's nested form keeps the job-level fallbacks inside `query`.
    auto inner = q->find("query");
    if (inner != q->end())
      v.steps = steps_of(*inner);
    if (v.onsuccess.empty())
      v.onsuccess = str(*q, "onsuccess");
    if (v.onerror.empty())
      v.onerror = str(*q, "onerror");
  }
  return v;
}

std::optional<int64_t> job_elapsed_ms(const job_view& job, std::optional<int64_t> now_ms) {
  if (is_final_status(job.status))
    return between(job.created_at, job.updated_at);
  auto created = parse_time_ms(job.created_at);
  if (!created || !now_ms)
    return std::nullopt;
  return std::max<int64_t>(0, *now_ms - *created);
}

std::optional<int64_t> step_elapsed_ms(const step_view& step, std::optional<int64_t> now_ms) {
  if (step.started_at.empty())
    return std::nullopt;
  if (!step.ended_at.empty())
    return between(step.started_at, step.ended_at);
  auto started = parse_time_ms(step.started_at);
  if (!started || !now_ms)
    return std::nullopt;
  return std::max<int64_t>(0, *now_ms - *started);
}

std::string render_job(const job_view& job, std::optional<int64_t> now_ms) {
  std::ostringstream out;
  auto field = [&](const char* label, const std::string& value) {
    if (!value.empty())
      out << pad(label, 12) << value << "\n";
  };
  field("job_id", job.job_id);
  field("user", job.user);
  field("status", job.status);
  field("created_at", job.created_at);
  field("updated_at", job.updated_at);
  field("elapsed", duration_or_empty(job_elapsed_ms(job, now_ms)));
  field("error", one_line(job.failed_reason, 0));
  field("onsuccess", one_line(job.onsuccess, 0));
  field("onerror", one_line(job.onerror, 0));
  field("fallback", job.fallback_status);
  field("fallback err", one_line(job.fallback_failed_reason, 0));
  if (job.steps.empty())
    return out.str();
  out << (job.steps.size() == 1 ? "step:\n" : "steps:\n");
  auto r = layout(job, now_ms);
  auto indent = detail_indent(r);
  for (size_t i = 0; i < job.steps.size(); ++i) {
    const auto& s = job.steps[i];
    out << row(r, i, s.status, one_line(s.query, 0)) << "\n";
    if (!job.simple && !s.failed_reason.empty())
      out << indent << "error: " << one_line(s.failed_reason, 0) << "\n";
    fallback_lines(out, indent, s.onsuccess, s.onerror, s.fallback_status,
                   s.fallback_failed_reason);
  }
  return out.str();
}

std::string render_progress(const job_view& job, std::optional<int64_t> now_ms) {
  std::ostringstream out;
  out << "job " << job.job_id << "  " << job.status;
  if (auto t = job_elapsed_ms(job, now_ms))
    out << "  " << format_duration(*t);
  out << "\n";
  auto r = layout(job, now_ms);
  auto indent = detail_indent(r);
  for (size_t i = 0; i < job.steps.size(); ++i) {
    const auto& s = job.steps[i];
    auto line = row(r, i, s.status, one_line(s.query, 60));
    if (!s.fallback_status.empty())
      line += "  (fallback " + s.fallback_status + ")";
    out << line << "\n";
    if (!job.simple && !s.failed_reason.empty())
      out << indent << "error: " << one_line(s.failed_reason, 100) << "\n";
  }
  if (!job.fallback_status.empty())
    out << "  job fallback: " << job.fallback_status << "\n";
  if (is_final_status(job.status) && !job.failed_reason.empty()
      && (job.simple || job.steps.empty()))
    out << "  error: " << one_line(job.failed_reason, 100) << "\n";
  return out.str();
}

std::string render_job_table(const json& jobs) {
  if (!jobs.is_array() || jobs.empty())
    return "no jobs\n";
  struct cells {
    std::string id, status, created, sql;
  };
  std::vector<cells> rows;
  size_t id_w = 6, status_w = 6, created_w = 10; // the header words
  for (const auto& j : jobs) {
    auto v = to_view(j);
    rows.push_back({v.job_id, v.status, v.created_at, one_line(joined_sql(v), 60)});
    id_w = std::max(id_w, width(v.job_id));
    status_w = std::max(status_w, width(v.status));
    created_w = std::max(created_w, width(v.created_at));
  }
  std::ostringstream out;
  out << pad("JOB_ID", id_w) << "  " << pad("STATUS", status_w) << "  "
      << pad("CREATED_AT", created_w) << "  QUERY\n";
  for (const auto& c : rows)
    out << pad(c.id, id_w) << "  " << pad(c.status, status_w) << "  " << pad(c.created, created_w)
        << "  " << c.sql << "\n";
  return out.str();
}

std::string redraw(size_t previous_lines, const std::string& text) {
  if (previous_lines == 0)
    return text;
  // CSI n F: cursor to the start of the line n lines up; CSI J: erase to the
  // end of the screen (also clears lines a shorter new block leaves behind).
  return "\x1b[" + std::to_string(previous_lines) + "F\x1b[J" + text;
}

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::optional<base_url> parse_base_url(const std::string& url, std::string& why) {
  auto sep = url.find("://");
  if (sep == std::string::npos) {
    why = "'" + url + "' is not a URL (expected http://host:port)";
    return std::nullopt;
  }
  auto scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") {
    why = "'" + url + "': the scheme must be http or https";
    return std::nullopt;
  }
  if (url.find_first_of("?#") != std::string::npos) {
    why = "'" + url + "': no query string or fragment allowed";
    return std::nullopt;
  }
  auto rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  auto prefix = slash == std::string::npos ? std::string{} : rest.substr(slash);
  if (authority.find('@') != std::string::npos) {
    // Never a key in a URL: it would end up in shell history and logs.
    why = "'" + url + "': no user or password in the URL (use --user and --api-key)";
    return std::nullopt;
  }
  std::string host = authority, port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) {
      why = "'" + url + "': unclosed '[' in the host";
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    auto tail = authority.substr(close + 1);
    if (!tail.empty()) {
      if (tail[0] != ':') {
        why = "'" + url + "': unexpected text after the host";
        return std::nullopt;
      }
      port = tail.substr(1);
    }
  } else if (auto colon = authority.find(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host == "[]") {
    why = "'" + url + "': no host";
    return std::nullopt;
  }
  if (authority.back() == ':' || (!port.empty() && (!digits(port, 0, port.size()) || port.size() > 5
                                                    || std::stoi(port) < 1
                                                    || std::stoi(port) > 65535))) {
    why = "'" + url + "': the port must be a number from 1 to 65535";
    return std::nullopt;
  }
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  return base_url{scheme + "://" + authority, prefix};
}

std::string encode_path_segment(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string error_message(const json& body) {
  if (!body.is_object())
    return {};
  auto e = body.find("error");
  if (e == body.end())
    return {};
  if (e->is_string())
    return e->get<std::string>();
  std::string out;
  if (e->is_array())
    for (const auto& m : *e)
      if (m.is_string())
        out += (out.empty() ? "" : "; ") + m.get<std::string>();
  return out;
}

} // namespace batchq::cli
