#include "src/http/user_gate.hpp"

namespace batchq::http {

std::optional<user_gate::pass> user_gate::enter(const std::string& user) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& c = users_[user];
  if (c.in_flight >= max_in_flight_) {
    if (c.in_flight == 0)
      users_.erase(user);
    return std::nullopt;
  }
  ++c.in_flight;
  return pass{this, user};
}

bool user_gate::pass::begin_wait() {
  if (gate_ == nullptr || wait_)
    return wait_;
  std::lock_guard<std::mutex> guard{gate_->mtx_};
  auto& c = gate_->users_[user_];
  if (c.waits >= gate_->max_waits_)
    return false;
  ++c.waits;
  wait_ = true;
  return true;
}

user_gate::pass::~pass() {
  if (gate_ == nullptr)
    return;
  std::lock_guard<std::mutex> guard{gate_->mtx_};
  auto i = gate_->users_.find(user_);
  if (i == gate_->users_.end())
    return;
  --i->second.in_flight;
  if (wait_)
    --i->second.waits;
  if (i->second.in_flight == 0)
    gate_->users_.erase(i);
}

std::pair<size_t, size_t> user_gate::load(const std::string& user) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = users_.find(user);
  return i == users_.end() ? std::pair<size_t, size_t>{0, 0}
                           : std::pair<size_t, size_t>{i->second.in_flight, i->second.waits};
}

} // namespace batchq::http
