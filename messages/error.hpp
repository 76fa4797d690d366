// batchq's one error type (STYLE.md habit 7).
//
// Adapters (src/redis, src/pg) and actors report failures as
// `caf::make_error(batchq::ec::..., "context")`. A *failed job* is not an
// error: it is a job status (src/job/status.hpp). The HTTP layer maps `ec` to
// status codes in one table. Register the category with
// `cfg.add_error_category<batchq::ec>(batchq::ec_category)` so that
// `sys.render(err)` prints names.
#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace batchq {

enum class ec : uint8_t {
  none = 0,
  /// Redis cannot be reached (connect/IO failure); retried with backoff.
  redis_unavailable,
  /// Redis answered with an error reply (a script error, wrong type, ...).
  redis_error,
  /// A fenced write was refused: this node no longer holds the user's lease.
  lease_lost,
  /// The user's queue already holds `batch.max-queued-jobs` ids.
  queue_full,
  /// No such job, or it belongs to another user.
  job_not_found,
  /// The state machine refused a transition (`Cannot set status from A to B`).
  invalid_transition,
  /// A request body or stored record that cannot be understood.
  invalid_job,
  /// Cannot connect to PostgreSQL (bad host, credentials, server down).
  pg_connect_failed,
  /// A statement failed in PostgreSQL (the context carries sqlstate + message).
  pg_statement_failed,
  /// The PostgreSQL connection broke while in use; it is discarded.
  pg_connection_lost,
  /// A configuration value is missing or out of range.
  invalid_config,
  /// A job with this id already exists (id collision on create; nothing written).
  job_exists,
  /// Another node cannot be reached: not registered (batch:nodes:{id}) or its
  /// published canceller refused the connection.
  node_unreachable,
  /// A message from another node without valid proof of cluster.secret, stale,
  /// replayed, or meant for another node (SPEC §5 v2).
  refused,
};

inline constexpr caf::atom_value ec_category = caf::atom("batchq");

inline const char* to_string(ec x) {
  switch (x) {
    case ec::none: return "none";
    case ec::redis_unavailable: return "redis_unavailable";
    case ec::redis_error: return "redis_error";
    case ec::lease_lost: return "lease_lost";
    case ec::queue_full: return "queue_full";
    case ec::job_not_found: return "job_not_found";
    case ec::invalid_transition: return "invalid_transition";
    case ec::invalid_job: return "invalid_job";
    case ec::pg_connect_failed: return "pg_connect_failed";
    case ec::pg_statement_failed: return "pg_statement_failed";
    case ec::pg_connection_lost: return "pg_connection_lost";
    case ec::invalid_config: return "invalid_config";
    case ec::job_exists: return "job_exists";
    case ec::node_unreachable: return "node_unreachable";
    case ec::refused: return "refused";
  }
  return "unknown";
}

/// Found by caf::error's converting constructor through ADL.
inline caf::error make_error(ec x) {
  return caf::error{static_cast<uint8_t>(x), ec_category};
}

/// An error with a human-readable context (the text users and logs see).
inline caf::error make_error(ec x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), ec_category,
                    caf::make_message(std::move(context))};
}

/// True if `err` is of batchq's category and has code `x`.
inline bool is(const caf::error& err, ec x) {
  return err && err.category() == ec_category && err.code() == static_cast<uint8_t>(x);
}

/// The human-readable context of a batchq error ("" when there is none).
inline std::string message_of(const caf::error& err) {
  if (!err)
    return {};
  const auto& ctx = err.context();
  if (ctx.size() >= 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return {};
}

} // namespace batchq
