// The coordination actor: the scheduler's Redis connection (SPEC §5, §7), on a
// thread of its own, so that the scheduler itself never blocks and its lease
// deadlines fire on time even while Redis is slow or gone.
//
// Each request is one call of a ports::coordination (production:
// ports::redis_coordination), one round trip: renew every held lease and slot
// (turns_renew.lua), look up database hosts (pipelined HGETs), the crash
// sweep (wip_orphans.lua), announcements (pipelined PUBLISHes). After it
// answers a host lookup it reads those users' job environment ahead (`env`,
// one pipelined round trip: job_environment::prime), so that their runners
// find it cached and a new user's first job saves a round trip. Port errors
// are passed back unchanged; the scheduler bounds every request with a
// timeout and retries at its next tick.
//
// Concurrency: the port BLOCKS, so the actor is spawned detached in
// production; requests are answered one at a time in mailbox order.
// Deterministic tests pass a fake port and detached = false.
#pragma once

#include <memory>

#include <caf/actor_system.hpp>

#include "messages/interfaces.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

/// REQUIRES: port != nullptr; it is used by this actor only. `env` may be
/// null (nothing is read ahead).
coordination_actor spawn_coordination(caf::actor_system& sys,
                                      std::shared_ptr<ports::coordination> port,
                                      bool detached = true,
                                      std::shared_ptr<ports::job_environment> env = nullptr);

} // namespace batchq
