// The pure helpers of the client commands (client.hpp): human-readable
// rendering of the HTTP API's job JSON (SPEC §3.6) for `batchq get`, `list`,
// `watch`, `submit --wait`, and reading --url. The `--json` output does not
// come through here: it is the server's JSON as is.
//
// Pure functions: no I/O, no clock (callers pass "now"), no CAF; tested in
// tests/client/format_test.cpp. Tolerant of what they read: a field missing or
// of an unexpected type renders as empty, never throws. Thread safety: none
// needed (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace batchq::cli {

/// Kept result rows (SPEC §11) for `batchq results`: `columns` is the page's
/// [{"name", "type"}], `rows` its arrays of JSON values. `table`: aligned
/// columns under a header and a rule, values cut to 40 characters, NULL shown
/// as `NULL` (a terminal). Otherwise TSV: a header line, fields joined by tabs,
/// `\`, tab, LF and CR escaped as PostgreSQL's text format does (`\\`, `\t`,
/// `\n`, `\r`), NULL as `\N`. Strings appear without quotes; other values as
/// JSON.
std::string render_result_rows(const nlohmann::json& columns,
                               const std::vector<nlohmann::json>& rows, bool table);

/// Whether `status` is final (SPEC §3.3: done, failed, cancelled, unknown).
bool is_final_status(const std::string& status);

/// Parses the API's timestamps, ISO 8601 UTC (`2026-11-28T17:36:10.905Z`, also
/// without fraction or with `+00:00`), into milliseconds since the epoch;
/// nullopt for anything else.
std::optional<int64_t> parse_time_ms(const std::string& iso);

/// A short duration: `850ms`, `12.3s`, `4m05s`, `2h03m`. Negative → `0ms`.
std::string format_duration(int64_t ms);

/// `sql` on one line (every run of whitespace becomes one space, ends
/// trimmed), cut to at most `max_chars` characters (UTF-8 code points) with
/// `...` at the end when cut. `max_chars` 0 = no cut.
std::string one_line(const std::string& sql, size_t max_chars);

/// One step of a job as the commands show it.
struct step_view {
  std::string query;
  std::string status;
  std::string failed_reason;
  std::string onsuccess;
  std::string onerror;
  std::string fallback_status;
  std::string fallback_failed_reason;
  std::string started_at;
  std::string ended_at;
};

/// A job as the commands show it. A simple job (`query` a string) has one step
/// whose status is the job's; the CARTO nested form's job-level fallbacks
/// (inside `query`) are lifted to the job.
struct job_view {
  std::string job_id;
  std::string user;
  std::string status;
  std::string created_at;
  std::string updated_at;
  std::string failed_reason;
  std::string onsuccess;
  std::string onerror;
  std::string fallback_status;
  std::string fallback_failed_reason;
  bool simple = false;
  std::vector<step_view> steps;
};

/// Reads a job object of the API. Anything not an object gives an empty view.
job_view to_view(const nlohmann::json& job);

/// How long a job has taken: updated_at - created_at once final, else
/// now - created_at; nullopt without parsable times (or without `now_ms` while
/// not final).
std::optional<int64_t> job_elapsed_ms(const job_view& job, std::optional<int64_t> now_ms);

/// How long a step has taken: ended_at - started_at, or now - started_at while
/// it runs (when `now_ms` is given); nullopt when it never started.
std::optional<int64_t> step_elapsed_ms(const step_view& step, std::optional<int64_t> now_ms);

/// `batchq get`: the job's fields one per line (aligned), then its steps with
/// status, time, SQL, failed_reason and fallbacks. SQL is shown in full, on one
/// line. Ends with a newline.
std::string render_job(const job_view& job, std::optional<int64_t> now_ms);

/// `batchq watch`: a header line (id, status, elapsed) then one line per step
/// (number, status, time, SQL cut to 60 chars, fallback status). With `now_ms`
/// nullopt nothing that ticks is shown (running times), so that the text only
/// changes when the job does. Ends with a newline.
std::string render_progress(const job_view& job, std::optional<int64_t> now_ms);

/// `batchq list`: an aligned table (JOB_ID, STATUS, CREATED_AT, QUERY cut to 60
/// chars; several steps joined with "; ") in the order given. An empty or
/// non-array `jobs` renders `no jobs\n`.
std::string render_job_table(const nlohmann::json& jobs);

/// The terminal bytes that replace a block of `previous_lines` lines just
/// printed (cursor at the start of the line below it) by `text`: cursor up,
/// erase to the end of the screen, then `text`. With previous_lines 0: `text`.
std::string redraw(size_t previous_lines, const std::string& text);

/// Number of '\n' in `text`.
size_t count_lines(const std::string& text);

/// A --url split for httplib: `origin` = scheme://authority (what
/// httplib::Client takes), `prefix` = the path before /user/... ("" or
/// "/something", no trailing slash).
struct base_url {
  std::string origin;
  std::string prefix;
};

/// Reads `http(s)://host[:port][/prefix]` (host may be `[v6]`). On a problem
/// (other scheme, no host, bad port, user:password@, `?` or `#`) returns
/// nullopt and sets `why` to a message for a person.
std::optional<base_url> parse_base_url(const std::string& url, std::string& why);

/// `s` percent-encoded for one URL path segment (RFC 3986 unreserved kept).
std::string encode_path_segment(const std::string& s);

/// The message of an API error body `{"error": ["a", "b"]}` (joined with "; "),
/// also `{"error": "a"}`; empty when the body has no such field.
std::string error_message(const nlohmann::json& body);

} // namespace batchq::cli
