#include "src/ports/redis_result_store.hpp"

#include "src/redis/ops.hpp"

namespace batchq::ports {

redis_result_store::redis_result_store(redis::endpoint ep) : client_(std::move(ep)) {
  // nop
}

caf::expected<result_store::run> redis_result_store::begin(const std::string& job_id,
                                                           size_t step) {
  auto id = redis::random_token();
  std::lock_guard<std::mutex> guard{mtx_};
  auto r = redis::begin_results(client_, job_id, step, id);
  if (!r)
    return std::move(r.error());
  return run{std::move(id), r->bytes_before};
}

caf::expected<void> redis_result_store::append(const std::string& job_id, size_t step,
                                               const std::string& run,
                                               const redis::results_batch& batch) {
  std::lock_guard<std::mutex> guard{mtx_};
  return redis::append_results(client_, job_id, step, run, batch);
}

} // namespace batchq::ports
