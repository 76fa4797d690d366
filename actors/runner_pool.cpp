#include "actors/runner_pool.hpp"

#include <algorithm>
#include <utility>

#include <caf/send.hpp>

namespace batchq {

runner_pool::runner_pool(spawn_fn spawn, size_t max_idle)
  : spawn_(std::move(spawn)), max_idle_(std::max<size_t>(1, max_idle)) {
}

job_runner_actor runner_pool::take(caf::actor_system& sys) {
  {
    std::lock_guard<std::mutex> guard{s_->m};
    if (!s_->idle.empty()) {
      auto r = std::move(s_->idle.back());
      s_->idle.pop_back();
      return r;
    }
  }
  auto r = spawn_(sys);
  auto id = r.id();
  bool closed;
  {
    std::lock_guard<std::mutex> guard{s_->m};
    closed = s_->closed;
    if (!closed)
      s_->all.emplace(id, r);
  }
  if (closed) {
    // A request to it fails at once, and the turn ends as after a runner's
    // failure.
    caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    return r;
  }
  // Outside the lock: it runs at once when the runner exited already.
  std::weak_ptr<shared> w = s_;
  caf::actor_cast<caf::strong_actor_ptr>(r)->get()->attach_functor([w, id] {
    if (auto s = w.lock()) {
      std::lock_guard<std::mutex> guard{s->m};
      s->all.erase(id);
    }
  });
  return r;
}

void runner_pool::give(job_runner_actor r) {
  {
    std::lock_guard<std::mutex> guard{s_->m};
    if (!s_->closed && s_->idle.size() < max_idle_) {
      s_->idle.push_back(std::move(r));
      return;
    }
  }
  caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
}

void runner_pool::close() {
  std::map<caf::actor_id, job_runner_actor> all;
  {
    std::lock_guard<std::mutex> guard{s_->m};
    s_->closed = true;
    s_->idle.clear();
    all.swap(s_->all);
  }
  for (auto& [id, r] : all)
    caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
}

size_t runner_pool::idle() const {
  std::lock_guard<std::mutex> guard{s_->m};
  return s_->idle.size();
}

} // namespace batchq
