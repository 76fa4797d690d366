// Time values of the job model. Every function that changes a job takes the
// current time as a parameter (no clock is read here), so tests are deterministic.
// Pure functions: safe from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace batchq::job {

using time_point = std::chrono::system_clock::time_point;

/// ISO 8601 UTC with milliseconds, as JavaScript's toISOString writes it (and
/// CARTO stores it): "2026-11-28T17:36:10.905Z". Sub-millisecond parts are
/// truncated.
std::string iso8601(time_point t);

/// Parses the format above (the milliseconds part is optional: "...:10Z").
/// Returns nullopt for anything else.
std::optional<time_point> parse_iso8601(std::string_view text);

} // namespace batchq::job
