// How the HTTP API answers (SPEC §8; docs/http-api.md "Errors"): the JSON
// body helpers every route uses, and THE table that maps batchq's `ec` (and
// CAF's own errors) to HTTP status codes (STYLE.md habit 7).
//
// Every JSON answer carries `Content-Type: application/json; charset=utf-8`;
// every error body is `{"error": ["<message>"]}`.
//
// Pure functions over a caller-owned httplib::Response: thread-safe.
#pragma once

#include <string>

#include <caf/error.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace batchq::http {

inline constexpr const char* json_type = "application/json; charset=utf-8";

/// An HTTP status and the message of its error body.
struct failure {
  int status = 500;
  std::string message;
};

/// The one table: batchq's `ec` (messages/error.hpp) and CAF's errors to a
/// status and message. redis_unavailable -> 503 "Redis is unavailable:
/// <detail>"; queue_full, invalid_job, invalid_transition -> 400 with the
/// error's own text; job_not_found -> 404; a request timeout -> 504; anything
/// else -> 500 (redis_error, lease_lost, pg_*, ...), with the error's text.
failure failure_of(const caf::error& err);

/// Sets `body` as JSON with `status`.
void write_json(httplib::Response& res, int status, const nlohmann::ordered_json& body);

/// `{"error": ["<message>"]}` with `status`.
void write_error(httplib::Response& res, int status, const std::string& message);

/// write_error(res, failure_of(err)).
void write_error(httplib::Response& res, const caf::error& err);

} // namespace batchq::http
