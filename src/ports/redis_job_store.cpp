#include "src/ports/redis_job_store.hpp"

#include <utility>

#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

namespace batchq::ports {

namespace {

redis::field_list to_list(const field_pairs& xs) { return {xs.begin(), xs.end()}; }

field_pairs to_pairs(const redis::field_map& m) { return {m.begin(), m.end()}; }

} // namespace

redis_job_store::redis_job_store(redis::endpoint ep) : client_(std::move(ep)) {
  // nop
}

caf::expected<job_ticket> redis_job_store::dequeue(const std::string& user,
                                                   const std::string& lease_token,
                                                   const field_pairs& claim) {
  auto r = redis::dequeue_job(client_, user, lease_token, to_list(claim));
  if (!r)
    return std::move(r.error());
  job_ticket t;
  t.user = user;
  t.lease_token = lease_token;
  if (*r) {
    t.job_id = std::move((*r)->job_id);
    t.record = to_pairs((*r)->fields);
  }
  return t;
}

caf::expected<void> redis_job_store::write(const state_write& w, bool final,
                                           int64_t ttl_seconds) {
  redis::write_mode mode;
  mode.final = final;
  mode.ttl_seconds = ttl_seconds;
  mode.expected_status = w.from_status;
  mode.remove_fields = w.del;
  return redis::write_job(client_, w.job_id, w.user, w.lease_token, to_list(w.set), mode);
}

caf::expected<void> redis_job_store::requeue(const state_write& w) {
  auto r = redis::requeue_job(client_, w.job_id, w.user, w.lease_token, to_list(w.set), w.del);
  if (!r)
    return std::move(r.error());
  return {};
}

caf::expected<pending_cancel> redis_job_store::cancel_pending(const std::string& job_id,
                                                              const std::string& user,
                                                              const field_pairs& set,
                                                              int64_t ttl_seconds) {
  auto r = redis::cancel_pending_job(client_, job_id, user, to_list(set), ttl_seconds);
  if (!r)
    return std::move(r.error());
  pending_cancel out;
  out.cancelled = r->cancelled;
  out.status = std::move(r->status);
  if (!out.cancelled && out.status == "running") {
    auto node = client_.command({"HGET", redis::keys::job(job_id), "node"});
    if (!node)
      return std::move(node.error());
    if (node->is_string())
      out.node = std::move(node->str);
  }
  return out;
}

caf::expected<field_pairs> redis_job_store::read(const std::string& job_id) {
  auto r = redis::read_job(client_, job_id);
  if (!r)
    return std::move(r.error());
  if (!*r)
    return field_pairs{};
  return to_pairs(**r);
}

caf::expected<std::vector<std::string>> redis_job_store::wip_jobs(const std::string& user) {
  return redis::wip_job_ids(client_, user);
}

caf::expected<void> redis_job_store::remove_from_wip(const std::string& job_id,
                                                     const std::string& user,
                                                     const std::string& lease_token) {
  auto r = redis::remove_from_wip(client_, job_id, user, lease_token);
  if (!r)
    return std::move(r.error());
  return {};
}

} // namespace batchq::ports
