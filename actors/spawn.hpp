// How every spawn_<role> factory starts its actor: detached (own thread: the
// actor's ports block on Redis/PostgreSQL) in production, or on CAF's
// scheduler when tests pass fakes and run the test coordinator.
#pragma once

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>

namespace batchq {

template <class F, class... Ts>
auto spawn_maybe_detached(caf::actor_system& sys, bool detached, F fun, Ts&&... xs) {
  if (detached)
    return sys.spawn<caf::detached>(std::move(fun), std::forward<Ts>(xs)...);
  return sys.spawn(std::move(fun), std::forward<Ts>(xs)...);
}

} // namespace batchq
