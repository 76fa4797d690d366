// The pg_cancel_backend fallback of SPEC §5: when the node running a job
// cannot be reached, any node cancels the job's statement through PostgreSQL.
//
// Blocking (one round trip on `conn`); same thread-safety as session.
#pragma once

#include <chrono>
#include <string_view>

#include <caf/expected.hpp>

#include "src/pg/session.hpp"

namespace batchq::pg {

/// Sends pg_cancel_backend to every *active* backend (other than `conn`'s own)
/// whose current query starts with `/* <job_id> */ ` and returns how many
/// were signalled. The job id travels as a bound parameter and is compared
/// with `left(query, length($1)) = $1`, so no character of it is interpreted.
/// REQUIRES: `conn`'s role may cancel those backends (a superuser, a member of
/// pg_signal_backend, or the same role); backends it may not signal are
/// skipped, not counted and not an error.
/// Errors: ec::pg_statement_failed, ec::pg_connection_lost.
caf::expected<int> cancel_backends_of_job(session& conn, std::string_view job_id);

/// Makes sure no backend runs a statement of `job_id` any more (SPEC §7
/// recovery: a later job of the same user may start only then): cancels the
/// job's active backends as above, and checks again after 20 ms, 40 ms, ...
/// (at most 200 ms apart) until none is active; backends still active after
/// one second are terminated (pg_terminate_backend) instead. Returns how many
/// backends were active at the first look (0: nothing ran). Same REQUIRES.
/// Errors: ec::pg_statement_failed `still running after <bound>` when one is
/// still active once `bound` passed, and those of cancel_backends_of_job.
caf::expected<int> stop_backends_of_job(session& conn, std::string_view job_id,
                                        std::chrono::milliseconds bound);

} // namespace batchq::pg
