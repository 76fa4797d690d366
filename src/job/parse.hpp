// Request parsing and validation (SPEC §3.1, §3.2; docs/job-format.md):
// `POST .../sql/job` bodies in any accepted shape, JSON or form-encoded, with
// `query` possibly in the URL query string, become a validated `job_request`.
// Pure functions: safe from any thread.
#pragma once

#include "src/job/job.hpp"
#include "src/job/problem.hpp"

#include <nlohmann/json.hpp>
#include <string_view>

namespace batchq::job {

/// The exact validation messages (SPEC §3.2).
inline constexpr const char* msg_invalid_sql = "You must indicate a valid SQL";
inline constexpr const char* msg_no_job_class = "there is no job class for the provided query";
/// Arrays and objects nested deeper than this in a JSON body are refused.
inline constexpr size_t max_json_depth = 64;

/// The request's top-level fields as one JSON object: the URL query string's
/// fields, overridden field by field by the body's. The body is read as JSON when
/// `content_type` is `application/json` (parameters such as `; charset=utf-8`
/// allowed), as a form when it is `application/x-www-form-urlencoded`, and, with no
/// content type, as JSON if it starts with `{` or `[` and as a form otherwise;
/// other content types contribute nothing. A JSON body that is not an object
/// contributes nothing. The HTTP layer also reads `api_key`/`map_key` from here.
/// Errors (invalid_request): "Invalid JSON body: syntax error at byte <n>",
/// "Invalid JSON body: number out of range: <token>" (beyond a double, e.g. 1e999),
/// "Invalid JSON body: nested deeper than 64 levels at byte <n>". Linear in the
/// size of the body and the URL query.
result<nlohmann::json> request_fields(std::string_view body, std::string_view content_type,
                                      std::string_view url_query);

/// Validates merged request fields (see request_fields) into a job_request.
/// `from_form`: the fields came from a form or URL (all values are strings), so a
/// `timeout` written as decimal digits is accepted.
/// Errors (invalid_request, exact texts in SPEC §3.2 and docs/job-format.md):
/// "You must indicate a valid SQL", "there is no job class for the provided query",
/// "<path> must be a string", "<path> must be a number",
/// "<path> must be a non-negative integer", "too many queries: <n> (max 1000)",
/// "onsuccess must be inside query for the nested form" (and onerror).
result<job_request> parse_request(const nlohmann::json& fields, bool from_form = false);

/// request_fields + parse_request: what the HTTP layer calls.
result<job_request> parse_request(std::string_view body, std::string_view content_type,
                                  std::string_view url_query);

} // namespace batchq::job
