// The subscriber (SPEC §2): tells the scheduler which users have work.
//
// Three sources, all ending as `wants(user)` to the scheduler:
//   - a SUBSCRIBE on channel `batch:users` (one message per enqueue, payload =
//     the user), held by a std::thread of its own on its own connection, which
//     anon_sends `wants(user)` to this actor. On a broken connection it marks the
//     subscriber not ready and reconnects with exponential backoff; it never
//     gives up. After every (re)connect it asks this actor for a `rescan`, since
//     messages published while it was not subscribed are lost;
//   - at start: the index `batch:indexes:queue` is rebuilt from SCAN
//     batch:queue:* (jobs CARTO's API or a crashed node left behind) and every
//     user found is reported;
//   - every `rescan_interval`: the index is re-read and every user in it is
//     reported, so a lost message never strands a queue.
// A failed index read (Redis down) is retried after `retry_interval` (a
// one-shot `rescan` too, until it succeeds); the start-up rebuild is retried
// until it succeeds. `ready` answers whether the
// SUBSCRIBE connection is up (for /ready).
//
// Concurrency: the index reads go through a ports::queue_index, which BLOCKS on
// Redis in production, so the actor is spawned detached. The SUBSCRIBE thread
// shares only an atomic flag and a mutex-guarded pointer with it (to interrupt
// the blocked read); the actor's cleanup stops and joins the thread.
// Deterministic tests pass a fake port, subscribe = false and detached = false,
// and send `wants` themselves.
#pragma once

#include <chrono>
#include <memory>

#include <caf/actor_system.hpp>

#include "messages/interfaces.hpp"
#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq {

struct settings;

struct subscriber_settings {
  /// Where to SUBSCRIBE (pub/sub ignores the db).
  redis::endpoint endpoint;
  /// Reconnect backoff of the SUBSCRIBE connection.
  redis::backoff_policy backoff{std::chrono::milliseconds{100}, std::chrono::milliseconds{5000}};
  /// batch.rescan-interval: period of the index re-read.
  std::chrono::milliseconds rescan_interval{60000};
  /// Delay before retrying a failed index read.
  std::chrono::milliseconds retry_interval{1000};
  /// Start the SUBSCRIBE thread (false in deterministic tests).
  bool subscribe = true;

  /// The subscriber's part of the validated configuration.
  static subscriber_settings from(const settings& s);
};

/// Spawns the subscriber; it reports to `scheduler`. `index` is used by the
/// subscriber only. REQUIRES: index.
subscriber_actor spawn_subscriber(caf::actor_system& sys, const subscriber_settings& cfg,
                                  scheduler_actor scheduler,
                                  std::shared_ptr<ports::queue_index> index,
                                  bool detached = true);

} // namespace batchq
