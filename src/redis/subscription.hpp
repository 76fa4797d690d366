// A Redis pub/sub subscription on its own connection (SPEC §2 subscriber).
//
// `subscription::open` connects, SUBSCRIBEs and waits for Redis' confirmation,
// so every message published after `open` returns is delivered. Pub/sub ignores
// SELECT, so the endpoint's db does not matter. There is no reconnect: when
// `next` reports redis_unavailable the subscription is dead; open a new one
// (with backoff) and re-read the state the messages announce (e.g. rebuild
// `batch:indexes:queue`), since messages published meanwhile are lost.
//
// Thread safety: `next` must be called from one thread at a time; `interrupt`
// may be called from any thread, at any time, to make a blocked `next` return.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"

namespace batchq::redis {

struct pubsub_message {
  std::string channel;
  std::string payload;
};

class subscription {
public:
  /// Connects to `ep` and subscribes to `channels`; a non-empty `client_name`
  /// (no spaces) is set first with CLIENT SETNAME, in the same round trip, so
  /// that CLIENT LIST names the connection.
  /// REQUIRES: !channels.empty(). Errors: redis_unavailable, redis_error.
  static caf::expected<std::unique_ptr<subscription>>
  open(const endpoint& ep, const std::vector<std::string>& channels,
       const std::string& client_name = {});

  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  /// Waits up to `timeout` (negative: forever) for the next message. Returns
  /// nullopt when the time ran out (the subscription stays usable).
  /// Errors: redis_unavailable when the connection broke or `interrupt` was
  /// called (the subscription is then dead).
  caf::expected<std::optional<pubsub_message>> next(std::chrono::milliseconds timeout);

  /// Makes a blocked or later `next` fail at once (shuts the socket down).
  void interrupt() noexcept;

private:
  explicit subscription(redisContext* ctx);

  redisContext* ctx_;
  std::atomic<int> fd_;
  std::atomic<bool> interrupted_{false};
};

} // namespace batchq::redis
