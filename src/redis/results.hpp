// Kept results in Redis (SPEC §11; docs/results.md, docs/redis-layout.md
// "Kept results"): a step's meta in the job's hash (`results:{step}`, JSON;
// `results:{step}:columns`, JSON) and its stored rows in the list
// `batchq:results:{job_id}`, which expires with the hash.
//
// Writes are scripts fenced by the step's run (results_begin.lua,
// results_append.lua): one round trip each. Reads are one LRANGE.
// Functions take the caller's client; thread-safety is the client's (one
// thread at a time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"

namespace batchq::redis {

/// Where a step's rows start, and what the job's earlier steps keep.
struct results_start {
  /// Index in batchq:results:{id} of the step's first row.
  int64_t first_row = 0;
  /// Bytes (stored form) the earlier steps of the job keep.
  int64_t bytes_before = 0;
};

/// Step `step` of the running job starts keeping rows under `run` (a fresh
/// random id): its meta is reset and the rows a previous run of it left are
/// dropped. Errors: invalid_transition (the job does not run), redis_unavailable,
/// redis_error.
caf::expected<results_start> begin_results(client& c, const std::string& job_id, size_t step,
                                           const std::string& run);

/// One append of a kept step (results_append.lua).
struct results_batch {
  /// The result's columns as JSON, when they are new ("" = unchanged).
  std::string columns_json;
  /// A new statement of the step's string began its result: drop the step's
  /// rows so far first.
  bool restart = false;
  /// Stored rows (job::encode_row), appended in order.
  std::vector<std::string> rows;
  /// Their size in bytes.
  int64_t bytes = 0;
  /// Rows were left out past the byte cap.
  bool truncated = false;
  /// The statement finished: the step's rows are complete.
  bool finished = false;
};

/// Appends `batch` to step `step` if `run` is still the step's latest run and
/// the job runs. Errors: invalid_transition (another run began, or the job
/// stopped running), redis_unavailable, redis_error.
caf::expected<void> append_results(client& c, const std::string& job_id, size_t step,
                                   const std::string& run, const results_batch& batch);

/// Stored rows [first, first + count) of batchq:results:{id}.
caf::expected<std::vector<std::string>> read_result_rows(client& c, const std::string& job_id,
                                                         int64_t first, int64_t count);

} // namespace batchq::redis
