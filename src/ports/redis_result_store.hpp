// The real ports::result_store: kept rows in Redis through results_begin.lua
// and results_append.lua (src/redis/results.hpp; docs/results.md), one
// connection shared by every runner of the node.
//
// Thread safety: safe; a mutex serialises the calls (each is one script on a
// warm connection, at most a few hundred rows or 64 KB: a runner holds the
// lock for one round trip). The calls BLOCK: only runner threads call them.
#pragma once

#include <mutex>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_result_store : public result_store {
public:
  /// Does no IO: the first call connects.
  explicit redis_result_store(redis::endpoint ep);

  caf::expected<run> begin(const std::string& job_id, size_t step) override;

  caf::expected<void> append(const std::string& job_id, size_t step, const std::string& run,
                             const redis::results_batch& batch) override;

private:
  std::mutex mtx_;
  redis::client client_;
};

} // namespace batchq::ports
