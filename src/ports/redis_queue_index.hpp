// The real `ports::queue_index` (the subscriber's reads of
// `batch:indexes:queue`, SPEC §2) over one src/redis connection to the batch
// database: rebuild = SCAN batch:queue:* + SADD (1 round trip per 1000 keys
// scanned, +1), users = SMEMBERS (1 round trip).
//
// Thread safety: none (ports.hpp); it BLOCKS, so its owner (the subscriber) is
// spawned detached.
#pragma once

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_queue_index : public queue_index {
public:
  /// Does no IO: the first call connects.
  explicit redis_queue_index(redis::endpoint batch);

  caf::expected<std::vector<std::string>> rebuild() override;
  caf::expected<std::vector<std::string>> users() override;

private:
  redis::client client_;
};

} // namespace batchq::ports
