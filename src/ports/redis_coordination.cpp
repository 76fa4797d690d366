#include "src/ports/redis_coordination.hpp"

#include "messages/error.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

namespace batchq::ports {

redis_coordination::redis_coordination(redis::endpoint batch, int metadata_db)
  : batch_(batch) {
  if (metadata_db != batch.db) {
    auto ep = batch;
    ep.db = metadata_db;
    metadata_.emplace(ep);
  }
}

caf::expected<bool> redis_coordination::acquire_lease(const std::string& user,
                                                      const std::string& token,
                                                      std::chrono::milliseconds ttl) {
  return redis::acquire_lease(batch_, user, token, ttl);
}

caf::expected<bool> redis_coordination::renew_lease(const std::string& user,
                                                    const std::string& token,
                                                    std::chrono::milliseconds ttl) {
  auto r = redis::renew_lease(batch_, user, token, ttl);
  if (r)
    return true;
  if (is(r.error(), ec::lease_lost))
    return false;
  return std::move(r.error());
}

caf::expected<void> redis_coordination::release_lease(const std::string& user,
                                                      const std::string& token) {
  auto r = redis::release_lease(batch_, user, token);
  if (!r)
    return std::move(r.error());
  return {};
}

caf::expected<bool> redis_coordination::release_lease_if_idle(const std::string& user,
                                                              const std::string& token) {
  auto r = redis::release_lease_if_idle(batch_, user, token);
  if (!r)
    return std::move(r.error());
  return *r == redis::idle_release::released;
}

caf::expected<bool> redis_coordination::acquire_slot(const std::string& host, int64_t capacity,
                                                     const std::string& slot,
                                                     std::chrono::milliseconds ttl) {
  return redis::acquire_capacity(batch_, host, capacity, slot, ttl);
}

caf::expected<bool> redis_coordination::renew_slot(const std::string& host,
                                                   const std::string& slot,
                                                   std::chrono::milliseconds ttl) {
  auto r = redis::renew_capacity(batch_, host, slot, ttl);
  if (r)
    return true;
  if (is(r.error(), ec::lease_lost))
    return false;
  return std::move(r.error());
}

caf::expected<void> redis_coordination::release_slot(const std::string& host,
                                                     const std::string& slot) {
  auto r = redis::release_capacity(batch_, host, slot);
  if (!r)
    return std::move(r.error());
  return {};
}

caf::expected<std::string> redis_coordination::database_host(const std::string& user) {
  auto r = metadata().command({"HGET", redis::keys::rails_user(user), "database_host"});
  if (!r)
    return std::move(r.error());
  if (r->is_nil())
    return std::string{};
  return std::move(r->str);
}

uint64_t redis_coordination::round_trips() const noexcept {
  return batch_.round_trips() + (metadata_ ? metadata_->round_trips() : 0);
}

caf::expected<void> redis_coordination::announce(const std::string& user) {
  auto r = batch_.command({"PUBLISH", std::string{redis::keys::users_channel}, user});
  if (!r)
    return std::move(r.error());
  return {};
}

caf::expected<std::vector<std::string>> redis_coordination::orphaned_users() {
  return redis::wip_orphans(batch_);
}

} // namespace batchq::ports
