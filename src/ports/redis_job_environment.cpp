#include "src/ports/redis_job_environment.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "messages/error.hpp"
#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"

namespace batchq::ports {

namespace {

std::optional<int64_t> positive_integer(const std::string& text) {
  int64_t value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc{} || end != text.data() + text.size() || value <= 0)
    return std::nullopt;
  return value;
}

/// Drops the entries of `m` whose time is up.
template <class Map, class TimePoint>
void sweep(Map& m, TimePoint now) {
  for (auto i = m.begin(); i != m.end();)
    i = now < i->second.until ? std::next(i) : m.erase(i);
}

} // namespace

redis_job_environment::redis_job_environment(redis::endpoint metadata,
                                             int64_t default_timeout_ms,
                                             std::chrono::milliseconds cache_ttl)
  : default_timeout_ms_(default_timeout_ms),
    cache_ttl_(cache_ttl),
    client_(std::move(metadata)) {
  // nop
}

uint64_t redis_job_environment::round_trips() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return client_.round_trips();
}

redis_job_environment::env_call redis_job_environment::call_for(const std::string& user,
                                                                const std::string& dbuser) {
  return {{redis::keys::limits_batch(user), redis::keys::rails_user(user),
           redis::keys::role_keys(user)},
          {redis::keys::api_key(user, ""), dbuser}};
}

caf::expected<redis_job_environment::user_env>
redis_job_environment::decode_env(const std::string& user, const redis::reply& r) const {
  if (!r.is_array() || r.elements.size() != 5)
    return make_error(ec::redis_error, "unexpected user_env reply: " + r.to_string());
  user_env e;
  e.cap = default_timeout_ms_;
  if (r.elements[0].is_string())
    if (auto v = positive_integer(r.elements[0].str))
      e.cap = *v;
  if (r.elements[1].is_string() && !r.elements[1].str.empty())
    e.master_key = redis::keys::api_key(user, r.elements[1].str);
  if (r.elements[2].is_string())
    e.master_role = r.elements[2].str;
  if (r.elements[3].is_string())
    e.master_password = r.elements[3].str;
  if (r.elements[4].is_string())
    e.wanted_password = r.elements[4].str;
  return e;
}

caf::expected<redis_job_environment::user_env>
redis_job_environment::read_env(const std::string& user, const std::string& dbuser,
                                clock::time_point now) {
  auto c = call_for(user, dbuser);
  auto r = client_.eval(redis::scripts::user_env, c.keys, c.args);
  if (!r)
    return std::move(r.error());
  auto e = decode_env(user, *r);
  if (e && cache_ttl_.count() > 0)
    remember(user, dbuser, *e, now);
  return e;
}

void redis_job_environment::prime(const std::vector<std::string>& users) {
  if (cache_ttl_.count() <= 0 || users.empty())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  std::vector<std::string> wanted;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& u : users) {
    if (auto i = caps_.find(u); i != caps_.end() && now < i->second.until)
      continue;
    wanted.push_back(u);
    auto c = call_for(u, "");
    cmds.push_back(redis::client::evalsha_command(redis::scripts::user_env, c.keys, c.args));
  }
  if (cmds.empty())
    return;
  // Scripts are loaded at connect; a NOSCRIPT (or any error) answer leaves
  // that user to its runner's own lookup.
  auto r = client_.pipeline(cmds);
  if (!r || r->size() != wanted.size())
    return;
  for (size_t i = 0; i < wanted.size(); ++i)
    if (auto e = decode_env(wanted[i], (*r)[i]))
      remember(wanted[i], "", *e, now);
}

void redis_job_environment::remember(const std::string& user, const std::string& dbuser,
                                     const user_env& e, clock::time_point now) {
  if (caps_.size() + passwords_.size() > sweep_at_) {
    sweep(caps_, now);
    sweep(passwords_, now);
    // Twice what is left (at least sweep_above): a sweep every so many
    // inserts, never one per insert while every entry is still fresh.
    sweep_at_ = std::max(sweep_above, 2 * (caps_.size() + passwords_.size()));
  }
  caps_[user] = cached<int64_t>{e.cap, now + cache_ttl_};
  if (e.master_role && e.master_password)
    passwords_[{user, *e.master_role}] = {e.master_password, now + cache_ttl_};
  if (!dbuser.empty())
    passwords_[{user, dbuser}] = {e.wanted_password, now + cache_ttl_};
}

size_t redis_job_environment::cached_entries() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return caps_.size() + passwords_.size();
}

caf::expected<int64_t> redis_job_environment::timeout_cap_ms(const std::string& user) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  if (auto i = caps_.find(user); i != caps_.end()) {
    if (now < i->second.until)
      return i->second.value;
    caps_.erase(i);
  }
  auto e = read_env(user, "", now);
  if (!e)
    return std::move(e.error());
  return e->cap;
}

caf::expected<std::optional<std::string>>
redis_job_environment::password(const std::string& user, const std::string& dbuser) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  auto key = std::make_pair(user, dbuser);
  if (auto i = passwords_.find(key); i != passwords_.end()) {
    if (now < i->second.until)
      return i->second.value; // a hit, or a miss remembered as long
    passwords_.erase(i);
  }
  // The master key's record, or the role index's record of that role, with
  // the cap (which the runner asks for next: cached) in one round trip. No
  // SCAN: a role that is in neither has no password batchq may use.
  auto e = read_env(user, dbuser, now);
  if (!e)
    return std::move(e.error());
  return std::move(e->wanted_password);
}

} // namespace batchq::ports
