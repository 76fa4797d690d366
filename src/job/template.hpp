// Fallback templates (SPEC §3.4): `<%= job_id %>` and `<%= error_message %>`,
// spaces inside the tags optional (`<%=job_id%>`). Stored fallbacks keep their
// templates; only the statement sent to PostgreSQL is rendered. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace batchq::job {

/// Doubles every `'`, so that `'<rendered>'` is a safe SQL string literal.
std::string sql_quote_doubled(std::string_view text);

/// Replaces every `<%= job_id %>` with `job_id` and every `<%= error_message %>`
/// with `error_message` after doubling its quotes (pass "" when there is no error,
/// e.g. for an onsuccess). Other `<% ... %>` text is left as is.
std::string render_template(std::string_view text, std::string_view job_id,
                            std::string_view error_message);

} // namespace batchq::job
