// The node's runners (job_runner.hpp "Going on"): a runner serves one turn at
// a time and, when the turn ends, waits here for the next one, with its
// thread and its Redis connection. So a turn of one job, the common case when
// fairness hands the slots round, creates and ends no thread
// (docs/performance.md "A runner per running turn"). At most `max_idle` wait;
// one more is told to exit.
//
// Thread-safe (user_queues on CAF's workers take and give back). close()
// tells every runner it made to exit — idle or not: a runner busy with a
// statement exits once it returns — so that the actor system can shut down;
// afterwards a runner given back is told to exit too.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <caf/actor_system.hpp>

#include "messages/interfaces.hpp"

namespace batchq {

class runner_pool {
public:
  using spawn_fn = std::function<job_runner_actor(caf::actor_system&)>;

  /// REQUIRES: spawn; max_idle >= 1.
  runner_pool(spawn_fn spawn, size_t max_idle);

  /// An idle runner, else a new one.
  job_runner_actor take(caf::actor_system& sys);

  /// `r`'s turn ended (it runs nothing): it waits for the next take.
  void give(job_runner_actor r);

  /// Tells every runner made here to exit.
  void close();

  size_t idle() const;

private:
  struct shared {
    std::mutex m;
    std::vector<job_runner_actor> idle;
    /// Every live runner made here (close() reaches the busy ones too); a
    /// runner leaves it when it exits.
    std::map<caf::actor_id, job_runner_actor> all;
    bool closed = false;
  };
  spawn_fn spawn_;
  size_t max_idle_;
  std::shared_ptr<shared> s_ = std::make_shared<shared>();
};

} // namespace batchq
