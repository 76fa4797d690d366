#include "src/ports/redis_job_store.hpp"

#include <utility>
#include <vector>

#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/turns.hpp"

namespace batchq::ports {

namespace {

redis::field_list to_list(const field_pairs& xs) { return {xs.begin(), xs.end()}; }

field_pairs to_pairs(const redis::field_map& m) { return {m.begin(), m.end()}; }

redis::write_kind kind_of(write_kind k) {
  switch (k) {
    case write_kind::progress: return redis::write_kind::progress;
    case write_kind::final: return redis::write_kind::final;
    case write_kind::requeue: return redis::write_kind::requeue;
  }
  return redis::write_kind::progress;
}

redis::turn_part part_of(turn_part p) {
  switch (p) {
    case turn_part::none: return redis::turn_part::none;
    case turn_part::next: return redis::turn_part::next;
    case turn_part::release: return redis::turn_part::release;
  }
  return redis::turn_part::none;
}

turn_outcome outcome_of(redis::turn_reply::outcome x) {
  using o = redis::turn_reply::outcome;
  switch (x) {
    case o::none: return turn_outcome::none;
    case o::empty: return turn_outcome::empty;
    case o::busy: return turn_outcome::busy;
    case o::full: return turn_outcome::full;
    case o::job: return turn_outcome::job;
    case o::recover: return turn_outcome::recover;
    case o::released: return turn_outcome::released;
  }
  return turn_outcome::none;
}

} // namespace

redis_job_store::redis_job_store(redis::endpoint ep) : client_(std::move(ep)) {
  // nop
}

caf::expected<turn_answer> redis_job_store::turn(const turn_request& r, const field_pairs& claim,
                                                 int64_t final_ttl_seconds) {
  redis::turn_args a;
  a.user = r.user;
  a.token = r.token;
  a.host = r.host;
  a.slot = r.slot;
  a.capacity = r.capacity;
  a.ttl = std::chrono::milliseconds{r.lease_ttl_ms};
  a.part = part_of(r.part);
  a.inherit = r.inherit;
  if (a.part == redis::turn_part::next)
    a.claim = to_list(claim);
  if (!r.write.empty()) {
    const auto& w = r.write.front();
    redis::turn_write tw;
    tw.job_id = w.job_id;
    tw.expected_status = w.expected_status;
    tw.expected_claim = w.expected_claim;
    tw.to_status = w.to_status;
    tw.kind = kind_of(w.kind);
    tw.ttl_seconds = final_ttl_seconds;
    tw.set = to_list(w.set);
    tw.del = w.del;
    a.write = std::move(tw);
  }
  auto rep = redis::turn_step(client_, a);
  if (!rep)
    return std::move(rep.error());
  turn_answer out;
  out.applied = rep->write == redis::turn_reply::written::applied;
  out.what = outcome_of(rep->what);
  out.queue_length = rep->queue_length;
  for (auto& j : rep->jobs)
    out.jobs.push_back(
      job_ticket{std::move(j.job_id), r.user, r.token, to_pairs(j.fields), j.owner_alive});
  return out;
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
  out.node = std::move(r->node);
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

caf::expected<bool> redis_job_store::cancel_mark(const std::string& job_id, bool set) {
  auto key = redis::keys::cancel_mark(job_id);
  auto r = set ? client_.command({"SET", key, "1", "EX", "86400"})
               : client_.command({"EXISTS", key});
  if (!r)
    return std::move(r.error());
  return set || (r->is_integer() && r->integer == 1);
}

} // namespace batchq::ports
