// Job, step and fallback statuses and the one state machine that governs them
// (SPEC §3.3). Pure functions over an enum: safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace batchq::job {

/// The status of a job, of a step (its main query), or of a fallback
/// (`fallback_status`). The spelling of `to_string` is the wire/record format.
enum class status : uint8_t { pending, running, done, failed, cancelled, skipped, unknown };

/// "pending", "running", ... (the record and response spelling).
const char* to_string(status x);

/// The status spelled `text`, or nullopt for anything else (case-sensitive).
std::optional<status> parse_status(std::string_view text);

/// True for done, failed, cancelled and unknown: nothing more happens to a job in
/// such a status. (`skipped` is terminal for a step or fallback but is never a job
/// status.)
bool is_final(status x);

/// The transitions SPEC §3.3 allows: pending -> running | cancelled | skipped,
/// running -> done | failed | cancelled | pending.
bool can_transition(status from, status to);

/// "Cannot set status from <from> to <to>" (the exact refusal text).
std::string transition_refusal(status from, status to);

} // namespace batchq::job
