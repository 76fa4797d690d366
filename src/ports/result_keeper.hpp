// result_keeper: the row_sink a runner gives a kept step's statement (SPEC
// §11; docs/results.md). It stores rows through a ports::result_store in
// batches, keeps at most `max_bytes` of stored rows per job (the earlier
// steps' bytes included), and keeps the rows of the string's last statement.
//
// Not thread-safe: one keeper per statement, used on its runner's thread. A
// store error stops the keeping (logged by the runner); the statement and the
// job go on as their SQL says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "src/pg/session.hpp"
#include "src/ports/ports.hpp"

namespace batchq::ports {

struct keeper_limits {
  /// results.max-bytes: stored-row bytes a job keeps at most.
  int64_t max_bytes = 16777216;
  /// An append is sent at this many rows or bytes, whichever comes first.
  size_t batch_rows = 500;
  size_t batch_bytes = 65536;
};

class result_keeper : public pg::row_sink {
public:
  /// `bytes_before`: what result_store::begin answered for this run.
  result_keeper(result_store& store, std::string job_id, size_t step, std::string run,
                int64_t bytes_before, keeper_limits limits);

  void begin_result(std::vector<job::result_column> columns) override;
  void row(job::result_row row) override;
  /// Fills in the current result's unnamed column types (sent with the last append).
  void type_names(const std::map<uint32_t, std::string>& names) override;

  /// The statement ended. `succeeded`: its rows are complete (the last
  /// append says `finished`); otherwise the step keeps nothing of it (its
  /// rows dropped, zero rows, `finished`).
  void finish(bool succeeded);

  /// The first store error, once keeping stopped because of it.
  const std::optional<caf::error>& failure() const noexcept { return failure_; }

private:
  void flush(bool finished);

  result_store& store_;
  std::string job_id_;
  size_t step_;
  std::string run_;
  int64_t bytes_before_;
  keeper_limits limits_;
  redis::results_batch pending_;
  /// The current result's columns.
  std::vector<job::result_column> columns_;
  /// Stored-row bytes of the current result (appended and pending).
  int64_t result_bytes_ = 0;
  /// A result began in this statement (the next one restarts the step).
  bool began_ = false;
  /// A row of the current result did not fit: no later one is kept.
  bool full_ = false;
  std::optional<caf::error> failure_;
};

/// `columns` as the meta stores them: [{"name": ..., "type": ..., "oid": ...}, ...]
/// (the OID types the JSON values when the rows are served).
std::string columns_json(const std::vector<job::result_column>& columns);

} // namespace batchq::ports
