#include "src/job/response.hpp"

namespace batchq::job {

namespace {

template <class T>
void put(nlohmann::ordered_json& obj, const char* key, const std::optional<T>& x) {
  if (x)
    obj[key] = *x;
}

void put_status(nlohmann::ordered_json& obj, const char* key, const std::optional<status>& x) {
  if (x)
    obj[key] = to_string(*x);
}

} // namespace

nlohmann::ordered_json step_json(const step& s, bool for_response) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  obj["query"] = s.query;
  obj["status"] = to_string(s.status);
  put(obj, "failed_reason", s.failed_reason);
  put(obj, "onsuccess", s.onsuccess);
  put(obj, "onerror", s.onerror);
  put(obj, "timeout", s.timeout_ms);
  put(obj, "id", s.id);
  if (s.has_fallback())
    put_status(obj, "fallback_status", s.fallback_status);
  put(obj, "fallback_failed_reason", s.fallback_failed_reason);
  put(obj, "started_at", s.started_at);
  put(obj, "ended_at", s.ended_at);
  if (for_response && s.kept && s.kept->finished) {
    nlohmann::ordered_json kept = nlohmann::ordered_json::object();
    kept["rows"] = s.kept->rows;
    kept["bytes"] = s.kept->bytes;
    kept["truncated"] = s.kept->truncated;
    obj["results"] = std::move(kept);
  } else {
    put(obj, "results", s.results);
  }
  return obj;
}

nlohmann::ordered_json query_json(const job& j, bool for_response) {
  if (j.shape == shape::simple)
    return j.steps.empty() ? std::string{} : j.steps.front().query;
  auto steps = nlohmann::ordered_json::array();
  for (const auto& s : j.steps)
    steps.push_back(step_json(s, for_response));
  if (j.shape != shape::nested)
    return steps;
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  obj["query"] = std::move(steps);
  put(obj, "onsuccess", j.onsuccess);
  put(obj, "onerror", j.onerror);
  return obj;
}

nlohmann::ordered_json to_response(const job& j) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  obj["job_id"] = j.job_id;
  obj["user"] = j.user;
  obj["status"] = to_string(j.status);
  obj["query"] = query_json(j, true);
  obj["created_at"] = j.created_at;
  obj["updated_at"] = j.updated_at;
  put(obj, "failed_reason", j.failed_reason);
  if (j.has_fallback())
    put_status(obj, "fallback_status", j.fallback_status);
  put(obj, "fallback_failed_reason", j.fallback_failed_reason);
  if (j.shape != shape::nested) {
    put(obj, "onsuccess", j.onsuccess);
    put(obj, "onerror", j.onerror);
  }
  if (keeps_any_results(j))
    obj["results"] = true;
  return obj;
}

} // namespace batchq::job
