// Per-user admission of job requests (docs/http-api.md, "Isolation"): at most
// `max_in_flight` requests of one user are handled at once and at most
// `max_waits` of them may be `?wait=` long-polls; past either, the request
// is answered 429 at once. Counted after authentication, so nobody can use
// up another user's share.
//
// Thread safety: every member may be called from any handler thread.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace batchq::http {

class user_gate {
public:
  user_gate(size_t max_in_flight, size_t max_waits)
    : max_in_flight_(max_in_flight), max_waits_(max_waits) {}

  /// Held while a request is handled; leaving frees its place.
  class pass {
  public:
    pass(pass&& other) noexcept : gate_(other.gate_), user_(std::move(other.user_)),
                                  wait_(other.wait_) {
      other.gate_ = nullptr;
    }
    pass& operator=(pass&&) = delete;
    ~pass();

    /// Turns this request into a long-poll; false (nothing changes) when the
    /// user already has max_waits of them.
    bool begin_wait();

  private:
    friend class user_gate;
    pass(user_gate* g, std::string user) : gate_(g), user_(std::move(user)) {}
    user_gate* gate_;
    std::string user_;
    bool wait_ = false;
  };

  /// A place for one request of `user`, or nullopt when it has max_in_flight.
  std::optional<pass> enter(const std::string& user);

  size_t max_in_flight() const noexcept { return max_in_flight_; }
  size_t max_waits() const noexcept { return max_waits_; }

  /// Requests and long-polls of `user` now (tests, metrics).
  std::pair<size_t, size_t> load(const std::string& user) const;

private:
  struct counts {
    size_t in_flight = 0;
    size_t waits = 0;
  };
  const size_t max_in_flight_;
  const size_t max_waits_;
  mutable std::mutex mtx_;
  std::map<std::string, counts> users_; // guarded by mtx_; entries removed at zero
};

} // namespace batchq::http
