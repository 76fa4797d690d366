#include "src/job/record.hpp"

#include "src/job/response.hpp"

#include <cmath>
#include <map>

namespace batchq::job {

namespace {

using nlohmann::json;

std::string dump(const nlohmann::ordered_json& x) {
  return x.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void add(record& r, const char* key, std::string value) {
  r.emplace_back(key, std::move(value));
}

void add(record& r, const char* key, const std::optional<std::string>& value) {
  if (value)
    r.emplace_back(key, *value);
}

problem bad(std::string_view job_id, std::string what) {
  return problem{problem_kind::invalid_record,
                 "job record " + std::string{job_id} + ": " + std::move(what)};
}

std::optional<std::string> text_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string())
    return std::nullopt;
  return it->get<std::string>();
}

// Fallback fields: CARTO treats a falsy fallback as absent.
std::optional<std::string> fallback_field(const json& obj, const char* key) {
  auto x = text_field(obj, key);
  if (x && x->empty())
    return std::nullopt;
  return x;
}

result<status> status_of(std::string_view job_id, const std::string& text) {
  if (auto x = parse_status(text))
    return *x;
  return bad(job_id, "unknown status '" + text + "'");
}

result<step> decode_step(std::string_view job_id, const json& element, size_t index) {
  step s;
  if (element.is_string()) {
    s.query = element.get<std::string>();
    return s;
  }
  auto where = "query step " + std::to_string(index);
  if (!element.is_object())
    return bad(job_id, where + " is not an object");
  auto query = text_field(element, "query");
  if (!query || query->empty())
    return bad(job_id, where + " has no query");
  s.query = *query;
  s.onsuccess = fallback_field(element, "onsuccess");
  s.onerror = fallback_field(element, "onerror");
  if (auto it = element.find("timeout"); it != element.end() && it->is_number()) {
    auto v = it->get<double>();
    // CARTO ignores a timeout that is not a finite number; keep what can matter.
    if (std::isfinite(v) && std::fabs(v) < 9.0e15)
      s.timeout_ms = static_cast<int64_t>(v);
  }
  if (auto it = element.find("id"); it != element.end() && !it->is_null())
    s.id = it->is_string() ? it->get<std::string>() : it->dump();
  if (auto it = element.find("results"); it != element.end() && it->is_boolean())
    s.results = it->get<bool>();
  if (auto x = text_field(element, "status")) {
    auto st = status_of(job_id, *x);
    if (!st)
      return st.error();
    s.status = *st;
  }
  if (auto x = text_field(element, "fallback_status")) {
    auto st = status_of(job_id, *x);
    if (!st)
      return st.error();
    s.fallback_status = *st;
  }
  if (!s.has_fallback())
    s.fallback_status.reset();
  else if (!s.fallback_status)
    s.fallback_status = status::pending;
  s.failed_reason = text_field(element, "failed_reason");
  s.fallback_failed_reason = text_field(element, "fallback_failed_reason");
  s.started_at = text_field(element, "started_at");
  s.ended_at = text_field(element, "ended_at");
  return s;
}

result<std::vector<step>> decode_steps(std::string_view job_id, const json& arr) {
  if (!arr.is_array() || arr.empty())
    return bad(job_id, "query has no steps");
  std::vector<step> steps;
  steps.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    auto s = decode_step(job_id, arr[i], i);
    if (!s)
      return s.error();
    steps.push_back(std::move(*s));
  }
  return steps;
}

// A step's `results:{i}` meta (results_begin.lua / results_append.lua); nullopt
// when it is not one.
std::optional<kept_rows> kept_of(const std::string& text) {
  auto m = json::parse(text, nullptr, false);
  if (!m.is_object())
    return std::nullopt;
  auto integer = [&](const char* key) {
    auto it = m.find(key);
    return it != m.end() && it->is_number() ? it->get<int64_t>() : int64_t{0};
  };
  auto flag = [&](const char* key) {
    auto it = m.find(key);
    return it != m.end() && it->is_boolean() && it->get<bool>();
  };
  kept_rows k;
  k.start = integer("start");
  k.rows = integer("rows");
  k.bytes = integer("bytes");
  k.truncated = flag("truncated");
  k.finished = flag("finished");
  return k;
}

bool uses_step_fields(const json& arr) {
  for (const auto& element : arr)
    if (element.is_object() && (element.contains("onsuccess") || element.contains("onerror") ||
                                element.contains("timeout") || element.contains("id")
                                || element.contains("results")))
      return true;
  return false;
}

} // namespace

record from_flat(const std::vector<std::string>& flat) {
  record r;
  for (size_t i = 0; i + 1 < flat.size(); i += 2)
    r.emplace_back(flat[i], flat[i + 1]);
  return r;
}

record encode(const job& j) {
  record r;
  add(r, "job_id", j.job_id);
  add(r, "user", j.user);
  add(r, "created_at", j.created_at);
  auto st = state_fields(j);
  // state_fields starts with status, updated_at, (query): keep CARTO's order of
  // the mandatory fields first.
  for (auto& kv : st.set)
    r.push_back(kv);
  if (j.shape == shape::simple)
    add(r, "query", j.steps.empty() ? std::string{} : j.steps.front().query);
  if (j.shape != shape::nested) {
    add(r, "onsuccess", j.onsuccess);
    add(r, "onerror", j.onerror);
  }
  add(r, "host", j.db.host);
  if (!j.db.port.empty())
    add(r, "port", j.db.port);
  add(r, "dbname", j.db.dbname);
  add(r, "dbuser", j.db.dbuser);
  add(r, "shape", std::string{to_string(j.shape)});
  if (j.results)
    add(r, "results", std::string{"true"});
  return r;
}

field_update state_fields(const job& j) {
  field_update u;
  auto opt = [&](const char* key, const std::optional<std::string>& x) {
    if (x)
      u.set.emplace_back(key, *x);
    else
      u.del.emplace_back(key);
  };
  u.set.emplace_back("status", to_string(j.status));
  u.set.emplace_back("updated_at", j.updated_at);
  if (j.shape != shape::simple)
    u.set.emplace_back("query", dump(query_json(j)));
  opt("failed_reason", j.failed_reason);
  if (j.has_fallback() && j.fallback_status)
    u.set.emplace_back("fallback_status", to_string(*j.fallback_status));
  else
    u.del.emplace_back("fallback_status");
  opt("fallback_failed_reason", j.fallback_failed_reason);
  opt("node", j.node);
  if (j.shape == shape::simple && !j.steps.empty()) {
    const auto& s = j.steps.front();
    u.set.emplace_back("step_status", to_string(s.status));
    opt("step_started_at", s.started_at);
    opt("step_ended_at", s.ended_at);
  }
  return u;
}

result<job> decode(std::string_view job_id, const record& fields) {
  std::map<std::string, std::string> f;
  for (const auto& [k, v] : fields)
    f[k] = v;
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto it = f.find(key);
    if (it == f.end() || it->second.empty())
      return std::nullopt;
    return it->second;
  };
  for (auto key : {"user", "status", "query", "created_at", "updated_at"})
    if (!get(key))
      return bad(job_id, std::string{"missing field '"} + key + "'");
  job j;
  j.job_id = std::string{job_id};
  j.user = *get("user");
  auto st = status_of(job_id, *get("status"));
  if (!st)
    return st.error();
  j.status = *st;
  j.created_at = *get("created_at");
  j.updated_at = *get("updated_at");
  j.failed_reason = get("failed_reason");
  j.fallback_failed_reason = get("fallback_failed_reason");
  j.node = get("node");
  j.db.host = get("host").value_or("");
  j.db.port = get("port").value_or("");
  j.db.dbname = get("dbname").value_or("");
  j.db.dbuser = get("dbuser").value_or("");
  j.db.pass = get("pass");
  const std::string query_text = *get("query");
  // The shape: batchq writes it; for CARTO's records it follows from `query`,
  // which CARTO stores as the SQL string (JobSimple) or as JSON (JSON.parse first,
  // as CARTO's job backend does).
  std::optional<shape> sh;
  if (auto x = get("shape")) {
    sh = parse_shape(*x);
    if (!sh)
      return bad(job_id, "unknown shape '" + *x + "'");
  }
  auto mismatch = [&] {
    return bad(job_id, "query is not the JSON of a " + std::string{to_string(*sh)} + " job");
  };
  if (sh == shape::simple) {
    j.steps.push_back(step{});
    j.steps.front().query = query_text;
  } else {
    auto parsed = json::parse(query_text, nullptr, false);
    if (parsed.is_array()) {
      if (sh == shape::nested)
        return mismatch();
      auto steps = decode_steps(job_id, parsed);
      if (!steps)
        return steps.error();
      j.steps = std::move(*steps);
      if (!sh)
        sh = uses_step_fields(parsed) ? shape::unified : shape::multiple;
    } else if (parsed.is_object()) {
      if (sh && *sh != shape::nested)
        return mismatch();
      auto inner = parsed.find("query");
      if (inner == parsed.end() || !inner->is_array())
        return bad(job_id, "query is no job shape");
      auto steps = decode_steps(job_id, *inner);
      if (!steps)
        return steps.error();
      j.steps = std::move(*steps);
      sh = shape::nested;
      j.onsuccess = fallback_field(parsed, "onsuccess");
      j.onerror = fallback_field(parsed, "onerror");
    } else {
      if (sh)
        return mismatch();
      // CARTO's JobSimple: the SQL string itself (or a JSON string, which CARTO's
      // backend would have JSON.parse'd into that string).
      sh = shape::simple;
      j.steps.push_back(step{});
      j.steps.front().query = parsed.is_string() ? parsed.get<std::string>() : query_text;
    }
  }
  j.shape = *sh;
  if (j.shape != shape::nested) {
    j.onsuccess = get("onsuccess");
    j.onerror = get("onerror");
  }
  if (j.shape == shape::simple) {
    auto& s = j.steps.front();
    if (s.query.empty())
      return bad(job_id, "query is empty");
    if (auto x = get("step_status")) {
      auto ss = status_of(job_id, *x);
      if (!ss)
        return ss.error();
      s.status = *ss;
    } else {
      // CARTO's JobSimple: the job's status is its one query's status.
      s.status = j.status;
    }
    s.started_at = get("step_started_at");
    s.ended_at = get("step_ended_at");
    if (s.status == status::failed)
      s.failed_reason = j.failed_reason;
  }
  if (auto x = get("fallback_status")) {
    auto fs = status_of(job_id, *x);
    if (!fs)
      return fs.error();
    j.fallback_status = *fs;
  }
  if (!j.has_fallback())
    j.fallback_status.reset();
  else if (!j.fallback_status)
    j.fallback_status = status::pending;
  j.results = get("results") == std::optional<std::string>{"true"};
  for (size_t i = 0; i < j.steps.size(); ++i) {
    auto field = "results:" + std::to_string(i);
    if (auto m = get(field.c_str())) {
      j.steps[i].kept = kept_of(*m);
      if (j.steps[i].kept)
        j.steps[i].kept->columns = get((field + ":columns").c_str()).value_or("");
    }
  }
  return j;
}

} // namespace batchq::job
