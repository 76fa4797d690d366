#include "src/ports/redis_coordination.hpp"

#include "src/redis/ops.hpp"
#include "src/redis/turns.hpp"

namespace batchq::ports {

redis_coordination::redis_coordination(redis::endpoint batch, int metadata_db)
  : batch_(batch) {
  if (metadata_db != batch.db) {
    auto ep = batch;
    ep.db = metadata_db;
    metadata_.emplace(ep);
  }
}

caf::expected<std::vector<std::string>>
redis_coordination::renew(const std::vector<held_lease>& held, std::chrono::milliseconds ttl) {
  std::vector<redis::held_turn> xs;
  xs.reserve(held.size());
  for (const auto& h : held)
    xs.push_back(redis::held_turn{h.user, h.token, h.host, h.slot});
  auto r = redis::renew_turns(batch_, xs, ttl);
  if (!r)
    return std::move(r.error());
  std::vector<std::string> lost;
  for (size_t i = 0; i < held.size(); ++i)
    if (!(*r)[i])
      lost.push_back(held[i].token);
  return lost;
}

caf::expected<std::vector<std::string>>
redis_coordination::database_hosts(const std::vector<std::string>& users) {
  return redis::database_hosts(metadata(), users);
}

uint64_t redis_coordination::round_trips() const noexcept {
  return batch_.round_trips() + (metadata_ ? metadata_->round_trips() : 0);
}

caf::expected<void> redis_coordination::announce(const std::vector<std::string>& users) {
  return redis::announce_users(batch_, users);
}

caf::expected<std::vector<std::string>> redis_coordination::orphaned_users() {
  return redis::wip_orphans(batch_);
}

} // namespace batchq::ports
