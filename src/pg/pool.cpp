#include "src/pg/pool.hpp"

#include <map>
#include <mutex>
#include <vector>

namespace batchq::pg {

struct pooled_connection::shared_state {
  shared_state(size_t max_idle, bool reset) : max_idle_per_key(max_idle), reset_on_release(reset) {
    // nop
  }
  const size_t max_idle_per_key;
  const bool reset_on_release;
  mutable std::mutex mtx;
  std::map<pool_key, std::vector<std::unique_ptr<session>>> idle; // guarded by mtx
};

// --- pooled_connection --------------------------------------------------------

pooled_connection::pooled_connection(std::weak_ptr<shared_state> owner, pool_key key,
                                     std::unique_ptr<session> s, bool reused)
  : owner_(std::move(owner)), key_(std::move(key)), session_(std::move(s)), reused_(reused) {
  // nop
}

pooled_connection& pooled_connection::operator=(pooled_connection&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    key_ = std::move(other.key_);
    session_ = std::move(other.session_);
    reused_ = other.reused_;
  }
  return *this;
}

pooled_connection::~pooled_connection() {
  release();
}

void pooled_connection::release() noexcept {
  if (!session_)
    return;
  std::unique_ptr<session> s = std::move(session_);
  if (s->broken() || !s->idle_outside_transaction())
    return; // closed here, outside any lock
  auto st = owner_.lock();
  if (!st)
    return;
  auto has_room = [&] {
    auto i = st->idle.find(key_);
    return i == st->idle.end() || i->second.size() < st->max_idle_per_key;
  };
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    if (!has_room())
      return; // closed: no reset for a connection nobody will reuse
  }
  if (st->reset_on_release) {
    s->begin_reset(); // answered while idle, read on the next acquire
    if (s->broken())
      return;
  }
  try {
    std::lock_guard<std::mutex> guard{st->mtx};
    if (has_room()) {
      st->idle[key_].push_back(std::move(s));
      return;
    }
  } catch (...) {
    // Out of memory: just close the connection.
  }
  // `s` closes when it goes out of scope (after the lock was released).
}

// --- pool -----------------------------------------------------------------------

pool::pool(pool_config cfg)
  : cfg_(cfg),
    state_(std::make_shared<pooled_connection::shared_state>(cfg.max_idle_per_key,
                                                              cfg.reset_on_release)) {
  // nop
}

pool::~pool() {
  clear();
}

caf::expected<pooled_connection> pool::acquire(const pool_key& key, const std::string& password) {
  // Newest idle first (most likely alive); unhealthy ones are closed after
  // the lock is released.
  std::vector<std::unique_ptr<session>> dead;
  for (;;) {
    std::unique_ptr<session> candidate;
    {
      std::lock_guard<std::mutex> guard{state_->mtx};
      auto i = state_->idle.find(key);
      if (i != state_->idle.end() && !i->second.empty()) {
        candidate = std::move(i->second.back());
        i->second.pop_back();
        if (i->second.empty())
          state_->idle.erase(i);
      }
    }
    if (!candidate)
      break;
    if (candidate->healthy_when_idle())
      return pooled_connection{state_, key, std::move(candidate), true};
    dead.push_back(std::move(candidate));
  }
  dead.clear();
  std::string conninfo = make_conninfo(key, password, cfg_.connect_timeout);
  auto s = session::connect(conninfo, cfg_.session);
  // Do not leave the password lying around in freed memory longer than needed.
  for (auto& ch : conninfo)
    const_cast<volatile char&>(ch) = '\0';
  if (!s)
    return std::move(s.error());
  return pooled_connection{state_, key, std::move(*s), false};
}

size_t pool::idle_count(const pool_key& key) const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto i = state_->idle.find(key);
  return i == state_->idle.end() ? 0 : i->second.size();
}

size_t pool::idle_count() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  size_t n = 0;
  for (auto& kv : state_->idle)
    n += kv.second.size();
  return n;
}

void pool::clear() {
  std::map<pool_key, std::vector<std::unique_ptr<session>>> closing;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    closing.swap(state_->idle);
  }
  // `closing` closes its sessions here, outside the lock.
}

} // namespace batchq::pg
