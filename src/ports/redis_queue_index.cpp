#include "src/ports/redis_queue_index.hpp"

#include "src/redis/ops.hpp"

namespace batchq::ports {

redis_queue_index::redis_queue_index(redis::endpoint batch) : client_(std::move(batch)) {}

caf::expected<std::vector<std::string>> redis_queue_index::rebuild() {
  return redis::rebuild_queue_index(client_);
}

caf::expected<std::vector<std::string>> redis_queue_index::users() {
  return redis::queued_users(client_);
}

} // namespace batchq::ports
