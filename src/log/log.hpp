// One line per event on stderr (SPEC §10): human-readable text by default,
// JSON lines with --log.format=json (fields level, timestamp, event, node, and
// the event's own fields such as user and job_id).
//
// Debian's CAF is built with its logger compiled out, so batchq has this small
// shim. Thread-safe: each line is formatted first and written with one call
// under a mutex, so lines from different threads never interleave.
//
// Never pass a password, an API key or a full SQL text: use `sql_excerpt()`
// for SQL (at most 200 characters).
#pragma once

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace batchq::log {

enum class level { debug, info, warning, error };

using fields = std::vector<std::pair<std::string, std::string>>;

/// Process-wide settings, set once at start-up (before other threads log).
void configure(bool json, level min_level, std::string node_id);

/// Parses "debug", "info", "warning" or "error" (anything else: info).
level parse_level(const std::string& name);

/// Writes one line for `event` unless `lvl` is below the configured level.
void write(level lvl, const std::string& event, const fields& fs = {});

inline void debug(const std::string& e, const fields& fs = {}) { write(level::debug, e, fs); }
inline void info(const std::string& e, const fields& fs = {}) { write(level::info, e, fs); }
inline void warning(const std::string& e, const fields& fs = {}) { write(level::warning, e, fs); }
inline void error(const std::string& e, const fields& fs = {}) { write(level::error, e, fs); }

/// SQL shortened to at most 200 characters ("..." marks a cut).
std::string sql_excerpt(const std::string& sql);

/// Formats a line without writing it (for tests).
std::string format(level lvl, const std::string& event, const fields& fs, bool json,
                   const std::string& node, const std::string& timestamp);

/// Redirects output (default std::cerr); for tests.
void set_sink(std::ostream* out);

} // namespace batchq::log
