#include "actors/cluster_gate.hpp"

#include "messages/error.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq {

namespace {

using gate_ptr = cluster_gate_actor::stateful_pointer<cluster_gate_state>;

cluster_gate_actor::behavior_type gate_behavior(gate_ptr self, cluster_gate_settings cfg,
                                                canceller_actor canceller) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.verifier = auth::verifier{st.cfg.secret, st.cfg.node_id, st.cfg.window};
  st.canceller = std::move(canceller);
  return {
    [=](remote_cancel_atom, const std::string& job_id,
        const node_proof& proof) -> caf::result<bool> {
      auto& st = self->state;
      auto v = st.verifier.check(remote_cancel_kind, job_id, proof, st.cfg.now_ms());
      if (v != auth::verdict::ok) {
        metrics::cluster_refused(auth::to_string(v));
        log::warning("cluster message refused", {{"reason", auth::to_string(v)},
                                                 {"kind", remote_cancel_kind},
                                                 {"from_node", proof.from},
                                                 {"to_node", proof.to},
                                                 {"job_id", job_id}});
        return make_error(ec::refused, std::string{"refused: "} + auth::to_string(v));
      }
      return self->delegate(st.canceller, remote_cancel_atom::value, job_id);
    },
  };
}

} // namespace

cluster_gate_actor spawn_cluster_gate(caf::actor_system& sys, cluster_gate_settings cfg,
                                      canceller_actor canceller) {
  return sys.spawn(gate_behavior, std::move(cfg), std::move(canceller));
}

} // namespace batchq
