// How every spawn_<role> factory starts its actor: detached (own thread: the
// actor's ports block on Redis/PostgreSQL) in production, or on CAF's
// scheduler when tests pass fakes and run the test coordinator. And the
// short-lived helper that runs ONE blocking call for an event-based actor
// (canceller, user_queue), so that they never block themselves.
#pragma once

#include <functional>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/spawn_options.hpp>

#include "messages/interfaces.hpp"

namespace batchq {

template <class F, class... Ts>
auto spawn_maybe_detached(caf::actor_system& sys, bool detached, F fun, Ts&&... xs) {
  if (detached)
    return sys.spawn<caf::detached>(std::move(fun), std::forward<Ts>(xs)...);
  return sys.spawn(std::move(fun), std::forward<Ts>(xs)...);
}

namespace detail {

template <class T>
caf::behavior blocking_call(caf::event_based_actor* h, std::function<caf::expected<T>()> f) {
  return {
    [=](run_atom) -> caf::result<T> {
      h->quit();
      auto r = f();
      if (!r)
        return std::move(r.error());
      return std::move(*r);
    },
  };
}

} // namespace detail

/// A helper actor that answers one `run` with f()'s result and quits: spawned
/// detached (its own thread: f may block) when `detached`, else on the
/// scheduler (deterministic tests). The caller requests `run` with a timeout.
template <class T>
caf::actor spawn_blocking(caf::actor_system& sys, bool detached,
                          std::function<caf::expected<T>()> f) {
  if (detached)
    return sys.spawn<caf::detached>(detail::blocking_call<T>, std::move(f));
  return sys.spawn(detail::blocking_call<T>, std::move(f));
}

} // namespace batchq
