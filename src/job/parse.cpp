#include "src/job/parse.hpp"

#include "src/job/form.hpp"
#include "src/job/text.hpp"

#include <cctype>
#include <cmath>

namespace batchq::job {

namespace {

using nlohmann::json;

problem invalid(std::string msg) {
  return problem{problem_kind::invalid_request, std::move(msg)};
}

bool is_valid_sql(const json& x) {
  return x.is_string() && !x.get_ref<const std::string&>().empty();
}

// A step element: a non-empty string, or an object with a non-empty string query.
bool is_step_element(const json& x) {
  if (x.is_string())
    return is_valid_sql(x);
  if (!x.is_object())
    return false;
  auto q = x.find("query");
  return q != x.end() && is_valid_sql(*q);
}

// Reads an optional SQL fallback field; null and "" mean "none" (CARTO treats a
// falsy fallback as absent).
result<std::optional<std::string>> read_fallback(const json& obj, const char* key,
                                                 const std::string& prefix) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return std::optional<std::string>{};
  if (!it->is_string())
    return invalid(prefix + key + " must be a string");
  auto& text = it->get_ref<const std::string&>();
  if (text.empty())
    return std::optional<std::string>{};
  return std::optional<std::string>{text};
}

result<std::optional<int64_t>> read_timeout(const json& obj, const std::string& prefix,
                                            bool from_form) {
  auto it = obj.find("timeout");
  auto field = prefix + "timeout";
  if (it == obj.end() || it->is_null())
    return std::optional<int64_t>{};
  if (it->is_number_unsigned())
    return std::optional<int64_t>{static_cast<int64_t>(it->get<uint64_t>())};
  if (it->is_number_integer()) {
    auto v = it->get<int64_t>();
    if (v < 0)
      return invalid(field + " must be a non-negative integer");
    return std::optional<int64_t>{v};
  }
  if (it->is_number_float()) {
    auto v = it->get<double>();
    if (!std::isfinite(v) || v < 0 || std::floor(v) != v || v > 9.0e15)
      return invalid(field + " must be a non-negative integer");
    return std::optional<int64_t>{static_cast<int64_t>(v)};
  }
  if (it->is_string() && from_form) {
    auto& text = it->get_ref<const std::string&>();
    if (text.empty())
      return std::optional<int64_t>{};
    bool digits = text.size() <= 15;
    for (char c : text)
      digits = digits && c >= '0' && c <= '9';
    if (digits)
      return std::optional<int64_t>{std::stoll(text)};
    if (text[0] == '-' || text.find('.') != std::string::npos)
      return invalid(field + " must be a non-negative integer");
  }
  return invalid(field + " must be a number");
}

// Reads an optional `results` flag (SPEC §11): a JSON boolean, or "true" /
// "false" from a form; null means "not said".
result<std::optional<bool>> read_results_flag(const json& obj, const std::string& prefix,
                                              bool from_form) {
  auto it = obj.find("results");
  if (it == obj.end() || it->is_null())
    return std::optional<bool>{};
  if (it->is_boolean())
    return std::optional<bool>{it->get<bool>()};
  if (from_form && it->is_string()) {
    auto& text = it->get_ref<const std::string&>();
    if (text == "true" || text == "false")
      return std::optional<bool>{text == "true"};
  }
  return invalid(prefix + "results must be a boolean");
}

// `prefix` is the element's path plus a dot, e.g. "query[1]." or "query.query[1].".
result<step> read_step(const json& element, const std::string& prefix, bool from_form) {
  step s;
  if (element.is_string()) {
    s.query = element.get<std::string>();
    return s;
  }
  s.query = element.at("query").get<std::string>();
  auto onsuccess = read_fallback(element, "onsuccess", prefix);
  if (!onsuccess)
    return onsuccess.error();
  s.onsuccess = *onsuccess;
  auto onerror = read_fallback(element, "onerror", prefix);
  if (!onerror)
    return onerror.error();
  s.onerror = *onerror;
  auto timeout = read_timeout(element, prefix, from_form);
  if (!timeout)
    return timeout.error();
  s.timeout_ms = *timeout;
  if (auto it = element.find("id"); it != element.end() && !it->is_null()) {
    if (!it->is_string())
      return invalid(prefix + "id must be a string");
    s.id = it->get<std::string>();
  }
  auto results = read_results_flag(element, prefix, from_form);
  if (!results)
    return results.error();
  s.results = *results;
  if (s.has_fallback())
    s.fallback_status = status::pending;
  return s;
}

// Validates a step array; `path` is "query" or "query.query".
result<std::vector<step>> read_steps(const json& arr, const std::string& path, bool from_form) {
  if (arr.empty())
    return invalid(msg_invalid_sql);
  if (arr.size() > max_steps)
    return invalid("too many queries: " + std::to_string(arr.size()) + " (max " +
                   std::to_string(max_steps) + ")");
  // Shapes first (as CARTO picks a job class before reading fields), then fields.
  for (auto& element : arr)
    if (!is_step_element(element))
      return invalid(msg_no_job_class);
  std::vector<step> steps;
  steps.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    auto s = read_step(arr[i], path + "[" + std::to_string(i) + "].", from_form);
    if (!s)
      return s.error();
    steps.push_back(std::move(*s));
  }
  return steps;
}

bool has_object(const json& arr) {
  for (auto& element : arr)
    if (element.is_object())
      return true;
  return false;
}

bool present(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && !it->is_null();
}

// Reads job-level fallbacks from `obj` (the top level, or the nested object).
result<void> read_job_fallbacks(const json& obj, const std::string& prefix, job_request& out) {
  auto onsuccess = read_fallback(obj, "onsuccess", prefix);
  if (!onsuccess)
    return onsuccess.error();
  auto onerror = read_fallback(obj, "onerror", prefix);
  if (!onerror)
    return onerror.error();
  out.onsuccess = *onsuccess;
  out.onerror = *onerror;
  return {};
}

bool media_type_is(std::string_view content_type, std::string_view expected) {
  auto semi = content_type.find(';');
  auto media = trim(content_type.substr(0, semi));
  if (media.size() != expected.size())
    return false;
  for (size_t i = 0; i < media.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(media[i])) != expected[i])
      return false;
  return true;
}

enum class body_kind { none, json_body, form_body };

/// The byte offset (1-based, as nlohmann counts) where `body` opens its
/// (max_json_depth + 1)-th nested array or object, or 0 when it never does.
/// Linear; strings (with their escapes) are skipped.
size_t too_deep_at(std::string_view body) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_json_depth)
        return i + 1;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return 0;
}

/// The token nlohmann names in an out_of_range message ("... parsing '1e999'"),
/// cut to 40 bytes.
std::string quoted_token(const std::string& what) {
  auto open = what.find('\'');
  auto close = what.rfind('\'');
  if (open == std::string::npos || close <= open)
    return {};
  auto token = what.substr(open + 1, close - open - 1);
  return token.size() > 40 ? token.substr(0, 40) + "..." : token;
}

struct merged {
  json fields;
  bool query_from_json = false;
};

result<merged> merge_fields(std::string_view body, std::string_view content_type,
                            std::string_view url_query) {
  merged out;
  out.fields = parse_form(url_query);
  body_kind kind = body_kind::none;
  if (media_type_is(content_type, "application/json")) {
    kind = body_kind::json_body;
  } else if (media_type_is(content_type, "application/x-www-form-urlencoded")) {
    kind = body_kind::form_body;
  } else if (trim(content_type).empty() && !trim(body).empty()) {
    auto first = trim(body).front();
    kind = (first == '{' || first == '[') ? body_kind::json_body : body_kind::form_body;
  }
  json body_fields = json::object();
  if (kind == body_kind::json_body && !trim(body).empty()) {
    if (auto at = too_deep_at(body); at > 0)
      return invalid("Invalid JSON body: nested deeper than " + std::to_string(max_json_depth)
                     + " levels at byte " + std::to_string(at));
    try {
      body_fields = json::parse(body.begin(), body.end());
    } catch (const json::parse_error& e) {
      return invalid("Invalid JSON body: syntax error at byte " + std::to_string(e.byte));
    } catch (const json::out_of_range& e) {
      // A number beyond a double's range (1e999): the only other parse failure.
      return invalid("Invalid JSON body: number out of range: " + quoted_token(e.what()));
    } catch (const json::exception& e) {
      return invalid(std::string{"Invalid JSON body: "} + e.what());
    }
    if (!body_fields.is_object())
      body_fields = json::object();
  } else if (kind == body_kind::form_body) {
    body_fields = parse_form(body);
  }
  for (auto& [k, v] : body_fields.items()) {
    if (k == "query")
      out.query_from_json = kind == body_kind::json_body;
    out.fields[k] = v;
  }
  return out;
}

// Structural UTF-8 check (lead byte + continuation bytes).
bool valid_utf8(std::string_view x) {
  // Strict (RFC 3629), as PostgreSQL and nlohmann's dump check it: no
  // overlong forms, no surrogates, nothing above U+10FFFF.
  size_t i = 0;
  while (i < x.size()) {
    auto c = static_cast<unsigned char>(x[i]);
    size_t n = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c >> 4) == 0xE) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c >> 3) == 0x1E) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= x.size())
      return false;
    for (size_t k = 1; k <= n; ++k) {
      auto b = static_cast<unsigned char>(x[i + k]);
      if ((b >> 6) != 0x2)
        return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// Form and URL values are raw bytes; PostgreSQL and JSON need UTF-8.
bool all_utf8(const job_request& r) {
  auto ok = [](const std::optional<std::string>& x) { return !x || valid_utf8(*x); };
  for (const auto& s : r.steps)
    if (!valid_utf8(s.query) || !ok(s.onsuccess) || !ok(s.onerror) || !ok(s.id))
      return false;
  return ok(r.onsuccess) && ok(r.onerror);
}

} // namespace

result<nlohmann::json> request_fields(std::string_view body, std::string_view content_type,
                                      std::string_view url_query) {
  auto m = merge_fields(body, content_type, url_query);
  if (!m)
    return m.error();
  return std::move(m->fields);
}

namespace {

result<job_request> parse_fields(const nlohmann::json& fields, bool from_form) {
  if (!fields.is_object())
    return invalid(msg_invalid_sql);
  auto q = fields.find("query");
  if (q == fields.end() || q->is_null())
    return invalid(msg_invalid_sql);
  job_request out;
  if (q->is_string()) {
    if (!is_valid_sql(*q))
      return invalid(msg_invalid_sql);
    out.shape = shape::simple;
    step s;
    s.query = q->get<std::string>();
    out.steps.push_back(std::move(s));
    if (auto r = read_job_fallbacks(fields, "", out); !r)
      return r.error();
    return out;
  }
  if (q->is_array()) {
    auto steps = read_steps(*q, "query", from_form);
    if (!steps)
      return steps.error();
    out.shape = has_object(*q) ? shape::unified : shape::multiple;
    out.steps = std::move(*steps);
    if (auto r = read_job_fallbacks(fields, "", out); !r)
      return r.error();
    return out;
  }
  if (q->is_object()) {
    auto inner = q->find("query");
    if (inner == q->end() || !inner->is_array())
      return invalid(msg_no_job_class);
    auto steps = read_steps(*inner, "query.query", from_form);
    if (!steps)
      return steps.error();
    out.shape = shape::nested;
    out.steps = std::move(*steps);
    if (auto r = read_job_fallbacks(*q, "query.", out); !r)
      return r.error();
    for (auto key : {"onsuccess", "onerror"})
      if (present(fields, key))
        return invalid(std::string{key} + " must be inside query for the nested form");
    return out;
  }
  return invalid(msg_no_job_class);
}

} // namespace

result<job_request> parse_request(const nlohmann::json& fields, bool from_form) {
  auto r = parse_fields(fields, from_form);
  if (r) {
    auto results = read_results_flag(fields, "", from_form);
    if (!results)
      return results.error();
    r->results = results->value_or(false);
  }
  if (r && !all_utf8(*r))
    return invalid("query must be valid UTF-8");
  return r;
}

result<job_request> parse_request(std::string_view body, std::string_view content_type,
                                  std::string_view url_query) {
  auto m = merge_fields(body, content_type, url_query);
  if (!m)
    return m.error();
  return parse_request(m->fields, !m->query_from_json);
}

} // namespace batchq::job
