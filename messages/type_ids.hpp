// Registers every message type of messages/types.hpp and batchq's error
// category with an actor system configuration. Call once on every config that
// builds an actor system (program, tests): remote nodes need the same list.
#pragma once

#include <caf/actor_system_config.hpp>

#include "messages/error.hpp"
#include "messages/interfaces.hpp"
#include "messages/types.hpp"

namespace batchq {

/// The middleman's application identifier (SPEC §5): nodes of other protocol
/// versions refuse to connect. Bump it when a remote message changes.
inline constexpr const char* protocol_id = "batchq/2";

inline void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<job_ticket>("batchq::job_ticket");
  cfg.add_message_type<job_write>("batchq::job_write");
  cfg.add_message_type<turn_request>("batchq::turn_request");
  cfg.add_message_type<turn_answer>("batchq::turn_answer");
  cfg.add_message_type<job_outcome>("batchq::job_outcome");
  cfg.add_message_type<job_continued>("batchq::job_continued");
  cfg.add_message_type<unsettled_job>("batchq::unsettled_job");
  cfg.add_message_type<orphan_sighting>("batchq::orphan_sighting");
  cfg.add_message_type<turn_grant>("batchq::turn_grant");
  cfg.add_message_type<turn_report>("batchq::turn_report");
  cfg.add_message_type<held_lease>("batchq::held_lease");
  cfg.add_message_type<pending_cancel>("batchq::pending_cancel");
  cfg.add_message_type<cancel_result>("batchq::cancel_result");
  cfg.add_message_type<node_proof>("batchq::node_proof");
  cfg.add_message_type<drain_report>("batchq::drain_report");
  cfg.add_message_type<scheduler_stats>("batchq::scheduler_stats");
  cfg.add_message_type<stop_reason>("batchq::stop_reason");
  cfg.add_message_type<status_actor>("batchq::status_actor");
  cfg.add_message_type<job_runner_actor>("batchq::job_runner_actor");
  cfg.add_message_type<user_queue_actor>("batchq::user_queue_actor");
  cfg.add_message_type<scheduler_actor>("batchq::scheduler_actor");
  cfg.add_message_type<subscriber_actor>("batchq::subscriber_actor");
  cfg.add_message_type<canceller_actor>("batchq::canceller_actor");
  cfg.add_message_type<cluster_gate_actor>("batchq::cluster_gate_actor");
  cfg.add_message_type<coordination_actor>("batchq::coordination_actor");
  cfg.add_error_category(ec_category, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string text = std::string{"batchq."} + to_string(static_cast<ec>(code));
    if (ctx.size() == 1 && ctx.match_element<std::string>(0))
      text += ": " + ctx.get_as<std::string>(0);
    return text;
  });
}

} // namespace batchq
