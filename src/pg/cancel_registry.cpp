#include "src/pg/cancel_registry.hpp"

namespace batchq::pg {

cancel_registry::cancel_registry(std::chrono::seconds tombstone_ttl)
  : tombstone_ttl_(tombstone_ttl) {
  // nop
}

std::shared_ptr<cancel_token> cancel_registry::arm(const std::string& job_id,
                                                   const std::string& user) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  purge_tombstones(now);
  auto& e = jobs_[job_id];
  e.user = user;
  e.since = now;
  if (!e.token)
    e.token = cancel_token::make();
  if (e.tombstone) {
    e.tombstone = false;
    e.token->cancel(); // the cancel came first: the token is born fired
  }
  return e.token;
}

void cancel_registry::disarm(const std::string& job_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  jobs_.erase(job_id);
}

bool cancel_registry::cancel(const std::string& job_id, stop_reason why, bool leave_tombstone) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  purge_tombstones(now);
  auto i = jobs_.find(job_id);
  if (i != jobs_.end() && !i->second.tombstone) {
    if (i->second.why == stop_reason::none)
      i->second.why = why; // the first reason wins
    i->second.token->cancel();
    return true;
  }
  if (leave_tombstone) {
    auto& e = jobs_[job_id];
    e.tombstone = true;
    e.why = why;
    e.since = now;
  }
  return false;
}

int cancel_registry::cancel_user(const std::string& user, stop_reason why) {
  std::lock_guard<std::mutex> guard{mtx_};
  int n = 0;
  for (auto& [id, e] : jobs_) {
    if (e.tombstone || e.user != user)
      continue;
    if (e.why == stop_reason::none)
      e.why = why;
    e.token->cancel();
    ++n;
  }
  return n;
}

stop_reason cancel_registry::reason(const std::string& job_id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = jobs_.find(job_id);
  return i == jobs_.end() ? stop_reason::none : i->second.why;
}

bool cancel_registry::armed(const std::string& job_id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = jobs_.find(job_id);
  return i != jobs_.end() && !i->second.tombstone;
}

void cancel_registry::purge_tombstones(clock::time_point now) {
  for (auto i = jobs_.begin(); i != jobs_.end();) {
    if (i->second.tombstone && now - i->second.since > tombstone_ttl_)
      i = jobs_.erase(i);
    else
      ++i;
  }
}

} // namespace batchq::pg
