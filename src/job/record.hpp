// The job's Redis record `batch:jobs:{job_id}` (SPEC §3.6, §4; docs/job-format.md
// "Redis record"): a flat hash of field/value strings, compatible both ways with
// CARTO's API (its JobSimple, JobMultiple and JobFallback records).
//
// Written fields: job_id, user, status, query, created_at, updated_at,
// failed_reason?, fallback_status?, fallback_failed_reason?, onsuccess?, onerror?
// (simple/multiple/unified only; nested keeps them inside `query`), host, port?,
// dbname, dbuser, and batchq's extras: shape, node?, and for simple jobs
// step_status, step_started_at?, step_ended_at?, results? ("true": SPEC §11).
// Read too: each kept step's `results:{i}` meta and columns, which the
// results scripts write (docs/results.md). Never `pass`.
// Pure functions.
#pragma once

#include "src/job/job.hpp"
#include "src/job/problem.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace batchq::job {

/// Field/value pairs in order (HSET arguments; HGETALL answer pairs).
using record = std::vector<std::pair<std::string, std::string>>;

/// A flat HGETALL-style reply {f1, v1, f2, v2, ...} as pairs (a trailing odd
/// element is dropped).
record from_flat(const std::vector<std::string>& flat);

/// The whole record of `j` (for the create script's HSET).
record encode(const job& j);

/// Reads a record written by batchq or by CARTO's API. `job_id` comes from the
/// key (CARTO does not store it in the hash). `pass` is read when present.
/// Errors (invalid_record): a missing user/status/query/created_at/updated_at,
/// an unknown status, or a `query` that is no job shape.
result<job> decode(std::string_view job_id, const record& fields);

/// What a status write changes (the status script HSETs `set` and HDELs `del`,
/// fenced by the lease; it rewrites every mutable field, which is idempotent):
/// set = status, updated_at, query (not for simple), failed_reason?,
/// fallback_status?, fallback_failed_reason?, node?, step_status,
/// step_started_at?, step_ended_at? (simple); del = those optional ones absent.
struct field_update {
  record set;
  std::vector<std::string> del;
};

field_update state_fields(const job& j);

} // namespace batchq::job
