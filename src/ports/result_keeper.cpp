#include "src/ports/result_keeper.hpp"

#include <nlohmann/json.hpp>

#include "src/metrics/metrics.hpp"

namespace batchq::ports {

std::string columns_json(const std::vector<job::result_column>& columns) {
  auto out = nlohmann::json::array();
  for (const auto& c : columns)
    out.push_back({{"name", c.name}, {"type", c.type_name}, {"oid", c.type_oid}});
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

result_keeper::result_keeper(result_store& store, std::string job_id, size_t step,
                             std::string run, int64_t bytes_before, keeper_limits limits)
  : store_(store),
    job_id_(std::move(job_id)),
    step_(step),
    run_(std::move(run)),
    bytes_before_(bytes_before),
    limits_(limits) {
  // nop
}

void result_keeper::begin_result(std::vector<job::result_column> columns) {
  if (began_) {
    // A later statement of the step's string: only its rows count.
    pending_ = redis::results_batch{};
    pending_.restart = true;
    result_bytes_ = 0;
    full_ = false;
  }
  began_ = true;
  pending_.columns_json = columns_json(columns);
  columns_ = std::move(columns);
}

void result_keeper::type_names(const std::map<uint32_t, std::string>& names) {
  bool changed = false;
  for (auto& c : columns_)
    if (auto it = names.find(c.type_oid); c.type_name.empty() && it != names.end()) {
      c.type_name = it->second;
      changed = true;
    }
  if (changed)
    pending_.columns_json = columns_json(columns_);
}

void result_keeper::row(job::result_row row) {
  if (failure_ || full_)
    return;
  auto stored = job::encode_row(row);
  auto size = static_cast<int64_t>(stored.size());
  if (bytes_before_ + result_bytes_ + size > limits_.max_bytes) {
    pending_.truncated = true; // this row and every later one of the result
    full_ = true;
    return;
  }
  result_bytes_ += size;
  pending_.bytes += size;
  pending_.rows.push_back(std::move(stored));
  if (pending_.rows.size() >= limits_.batch_rows
      || static_cast<size_t>(pending_.bytes) >= limits_.batch_bytes)
    flush(false);
}

void result_keeper::finish(bool succeeded) {
  if (!succeeded) {
    pending_ = redis::results_batch{};
    pending_.restart = true;
    pending_.columns_json = "[]";
  }
  flush(true);
}

void result_keeper::flush(bool finished) {
  if (failure_)
    return;
  pending_.finished = finished;
  auto r = store_.append(job_id_, step_, run_, pending_);
  if (!r) {
    failure_ = std::move(r.error());
  } else {
    auto& m = metrics::global();
    m.result_bytes_kept.fetch_add(static_cast<uint64_t>(pending_.bytes), std::memory_order_relaxed);
    m.result_rows_kept.fetch_add(pending_.rows.size(), std::memory_order_relaxed);
  }
  bool truncated = pending_.truncated;
  pending_ = redis::results_batch{};
  pending_.truncated = truncated; // sticky in the meta too; sent again harmlessly
}

} // namespace batchq::ports
