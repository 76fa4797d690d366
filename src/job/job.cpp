#include "src/job/job.hpp"

namespace batchq::job {

const char* to_string(shape x) {
  switch (x) {
  case shape::simple:
    return "simple";
  case shape::multiple:
    return "multiple";
  case shape::nested:
    return "nested";
  case shape::unified:
    return "unified";
  }
  return "simple";
}

std::optional<shape> parse_shape(std::string_view text) {
  for (auto x : {shape::simple, shape::multiple, shape::nested, shape::unified})
    if (text == to_string(x))
      return x;
  return std::nullopt;
}

job make_job(job_request request, std::string job_id, std::string user, db_target db,
             time_point now) {
  job result;
  result.job_id = std::move(job_id);
  result.user = std::move(user);
  result.status = status::pending;
  result.shape = request.shape;
  result.steps = std::move(request.steps);
  for (auto& s : result.steps) {
    s.status = status::pending;
    s.fallback_status.reset();
    if (s.has_fallback())
      s.fallback_status = status::pending;
  }
  result.onsuccess = std::move(request.onsuccess);
  result.onerror = std::move(request.onerror);
  result.results = request.results;
  if (result.has_fallback())
    result.fallback_status = status::pending;
  result.created_at = result.updated_at = iso8601(now);
  result.db = std::move(db);
  return result;
}

} // namespace batchq::job
