// The normalised job model (SPEC §3.1; docs/job-format.md): every accepted
// request shape and every Redis record, CARTO-written or batchq-written, becomes
// one `job` — ordered steps plus optional job-level fallbacks — and remembers its
// submitted `shape` so that responses echo it back.
//
// Plain value types with no hidden state; a `job` is owned by whoever holds it and
// is not synchronised (copy it to share it across threads or actors).
#pragma once

#include "src/job/clock.hpp"
#include "src/job/status.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace batchq::job {

/// Most steps one job may have (SPEC §3.2).
inline constexpr size_t max_steps = 1000;

/// The request shape a job was submitted in (SPEC §3.1). Decides how `query` is
/// echoed in responses and stored in Redis; the progression ignores it.
enum class shape : uint8_t {
  /// `"query": "<sql>"` (job-level onsuccess/onerror allowed: SPEC's unified 4b).
  simple,
  /// `"query": ["<sql>", ...]`, strings only (job-level fallbacks allowed).
  multiple,
  /// CARTO's fallback form `"query": {"query": [{...}], "onsuccess", "onerror"}`.
  nested,
  /// An array holding at least one step object (SPEC's unified 4a).
  unified,
};

/// "simple", "multiple", "nested", "unified" (the `shape` record field).
const char* to_string(shape x);
std::optional<shape> parse_shape(std::string_view text);

/// What a step keeps of its rows (SPEC §11), as its `results:{i}` meta says.
struct kept_rows {
  /// Index of the step's first row in the job's list of stored rows.
  int64_t start = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  bool truncated = false;
  /// The step's statement finished: its rows are all kept.
  bool finished = false;
  /// The result's columns as JSON (`[{"name","type"}...]`), "" before any.
  std::string columns;
};

/// One main query and its fallbacks, with their progress.
struct step {
  /// The SQL as submitted (never rendered).
  std::string query;
  /// Step fallbacks, stored with their templates unrendered.
  std::optional<std::string> onsuccess;
  std::optional<std::string> onerror;
  /// Per-step statement timeout in ms as submitted; only a value > 0 has effect.
  std::optional<int64_t> timeout_ms;
  /// Free client label (CARTO analyses use "analysis:node:type").
  std::optional<std::string> id;
  /// `results` as submitted on the step object (SPEC §11): overrides the job's.
  std::optional<bool> results;

  batchq::job::status status = batchq::job::status::pending;
  /// Present iff the step has a fallback (onsuccess or onerror).
  std::optional<batchq::job::status> fallback_status;
  std::optional<std::string> failed_reason;
  std::optional<std::string> fallback_failed_reason;
  /// ISO 8601 (see clock.hpp) once the main query started / became final.
  std::optional<std::string> started_at;
  std::optional<std::string> ended_at;

  /// What the step keeps, from its `results:{i}` meta once it began keeping
  /// rows (SPEC §11; docs/results.md); read from Redis, never written by src/job.
  std::optional<kept_rows> kept;

  bool has_fallback() const { return onsuccess.has_value() || onerror.has_value(); }
};

/// Where the job's statements run. `pass` is only ever read from records written
/// by CARTO's API; batchq never stores it (record.hpp).
struct db_target {
  std::string host;
  std::string port;
  std::string dbname;
  std::string dbuser;
  std::optional<std::string> pass;
};

struct job {
  std::string job_id;
  std::string user;
  batchq::job::status status = batchq::job::status::pending;
  batchq::job::shape shape = batchq::job::shape::simple;
  /// Never empty for a valid job; at most `max_steps`.
  std::vector<step> steps;
  /// Job-level fallbacks, stored unrendered.
  std::optional<std::string> onsuccess;
  std::optional<std::string> onerror;
  /// Present iff the job has a job-level fallback.
  std::optional<batchq::job::status> fallback_status;
  std::optional<std::string> failed_reason;
  std::optional<std::string> fallback_failed_reason;
  std::string created_at;
  std::string updated_at;
  db_target db;
  /// batchq extra: id of the node that last started running this job.
  std::optional<std::string> node;
  /// Top-level `"results": true` (SPEC §11): every main step keeps its rows
  /// unless its own `results` says otherwise.
  bool results = false;

  bool has_fallback() const { return onsuccess.has_value() || onerror.has_value(); }
};

/// Whether main step `i` of `j` keeps its rows (SPEC §11). REQUIRES: i < steps.
inline bool keeps_results(const job& j, size_t i) {
  return j.steps[i].results.value_or(j.results);
}

/// Whether any step of `j` keeps its rows.
inline bool keeps_any_results(const job& j) {
  for (size_t i = 0; i < j.steps.size(); ++i)
    if (keeps_results(j, i))
      return true;
  return false;
}

/// What a request asks for, validated (parse.hpp): shape, steps (all pending,
/// `fallback_status` pending iff the step has a fallback) and job fallbacks.
struct job_request {
  batchq::job::shape shape = batchq::job::shape::simple;
  std::vector<step> steps;
  std::optional<std::string> onsuccess;
  std::optional<std::string> onerror;
  /// Top-level `results` (SPEC §11).
  bool results = false;
};

/// A new pending job from a validated request; created_at = updated_at = `now`.
job make_job(job_request request, std::string job_id, std::string user, db_target db,
             time_point now);

} // namespace batchq::job
