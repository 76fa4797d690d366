#include "actors/coordination.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/spawn.hpp"

namespace batchq {

namespace {

struct coordination_state {
  std::shared_ptr<ports::coordination> port;
  std::shared_ptr<ports::job_environment> env;
  static inline const char* name = "coordination";
};

using self_ptr = coordination_actor::stateful_pointer<coordination_state>;

template <class T>
caf::result<T> answer(caf::expected<T> x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

coordination_actor::behavior_type coordination(self_ptr self,
                                               std::shared_ptr<ports::coordination> port,
                                               std::shared_ptr<ports::job_environment> env) {
  self->state.port = std::move(port);
  self->state.env = std::move(env);
  return {
    [=](renew_atom, const std::vector<held_lease>& held,
        int64_t ttl_ms) -> caf::result<std::vector<std::string>> {
      return answer(self->state.port->renew(held, std::chrono::milliseconds{ttl_ms}));
    },
    [=](hosts_atom, const std::vector<std::string>& users)
      -> caf::typed_response_promise<std::vector<std::string>> {
      auto rp = self->make_response_promise<std::vector<std::string>>();
      auto hosts = self->state.port->database_hosts(users);
      if (!hosts) {
        rp.deliver(std::move(hosts.error()));
        return rp;
      }
      rp.deliver(std::move(*hosts)); // the scheduler goes on now
      if (self->state.env)
        self->state.env->prime(users);
      return rp;
    },
    [=](orphans_atom) -> caf::result<std::vector<std::string>> {
      return answer(self->state.port->orphaned_users());
    },
    [=](announce_atom, const std::vector<std::string>& users) -> caf::result<bool> {
      if (auto r = self->state.port->announce(users); !r)
        return std::move(r.error());
      return true;
    },
  };
}

} // namespace

coordination_actor spawn_coordination(caf::actor_system& sys,
                                      std::shared_ptr<ports::coordination> port, bool detached,
                                      std::shared_ptr<ports::job_environment> env) {
  return spawn_maybe_detached(sys, detached, coordination, std::move(port), std::move(env));
}

} // namespace batchq
