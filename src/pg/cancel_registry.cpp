#include "src/pg/cancel_registry.hpp"

namespace batchq::pg {

cancel_registry::cancel_registry(std::chrono::seconds tombstone_ttl)
  : tombstone_ttl_(tombstone_ttl) {
  // nop
}

std::shared_ptr<cancel_token> cancel_registry::arm(const std::string& job_id,
                                                   const std::string& user,
                                                   const std::string& lease_token) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  purge_tombstones(now);
  auto& e = jobs_[job_id];
  bool cancelled_first = e.tombstone && e.why == stop_reason::user_cancel;
  e = entry{};
  e.user = user;
  e.lease_token = lease_token;
  e.since = now;
  e.token = cancel_token::make();
  if (auto i = leases_.find(lease_token); !lease_token.empty() && i != leases_.end())
    e.token->bind(i->second);
  if (cancelled_first) {
    e.why = stop_reason::user_cancel;
    e.token->cancel(); // the cancel came first: the token is born fired
  }
  return e.token;
}

void cancel_registry::disarm(const std::string& job_id, const cancel_token* token) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = jobs_.find(job_id);
  if (i != jobs_.end() && !i->second.tombstone && i->second.token.get() == token)
    jobs_.erase(i);
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
  if (leave_tombstone && why == stop_reason::user_cancel) {
    auto& e = jobs_[job_id];
    e = entry{};
    e.tombstone = true;
    e.why = why;
    e.since = now;
  }
  return false;
}

int cancel_registry::cancel_user(const std::string& user, const std::string& lease_token,
                                 stop_reason why) {
  std::lock_guard<std::mutex> guard{mtx_};
  int n = 0;
  for (auto& [id, e] : jobs_) {
    if (e.tombstone || e.user != user)
      continue;
    if (!lease_token.empty() && e.lease_token != lease_token)
      continue;
    if (e.why == stop_reason::none)
      e.why = why;
    e.token->cancel();
    ++n;
  }
  return n;
}

stop_reason cancel_registry::reason(const std::string& job_id, const cancel_token* token) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = jobs_.find(job_id);
  if (i == jobs_.end() || i->second.tombstone || i->second.token.get() != token)
    return stop_reason::none;
  return i->second.why;
}

bool cancel_registry::armed(const std::string& job_id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = jobs_.find(job_id);
  return i != jobs_.end() && !i->second.tombstone;
}

std::shared_ptr<lease_deadline> cancel_registry::lease(const std::string& lease_token) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& d = leases_[lease_token];
  if (!d)
    d = std::make_shared<lease_deadline>();
  return d;
}

void cancel_registry::forget_lease(const std::string& lease_token) {
  std::lock_guard<std::mutex> guard{mtx_};
  leases_.erase(lease_token);
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
