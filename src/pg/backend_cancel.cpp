#include "src/pg/backend_cancel.hpp"

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <string>
#include <vector>

#include "messages/error.hpp"

namespace batchq::pg {

namespace {

// The job's active backends that this role may signal (same rules as
// PostgreSQL: a member of the backend's role or of pg_signal_backend; only a
// superuser may signal a superuser's backend), as a WHERE clause on
// pg_stat_activity `a` joined with pg_roles `r`; $1 is the statement tag.
constexpr const char* job_backends =
  "FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
  "WHERE a.pid <> pg_backend_pid() AND a.state = 'active' "
  "AND left(a.query, length($1)) = $1 "
  "AND (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER')) "
  "AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))";

caf::expected<int> signal_backends(session& conn, std::string_view job_id, const char* fn) {
  std::string sql = std::string{"SELECT count(*) FILTER (WHERE "} + fn + "(a.pid)) " + job_backends;
  std::vector<std::string> params{"/* " + std::string{job_id} + " */ "};
  auto v = conn.query_value(sql, params);
  if (!v)
    return std::move(v.error());
  if (!*v)
    return 0;
  return std::atoi((*v)->c_str());
}

} // namespace

caf::expected<int> stop_backends_of_job(session& conn, std::string_view job_id,
                                        std::chrono::milliseconds bound) {
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  auto pause = std::chrono::milliseconds{20};
  int first = -1;
  for (;;) {
    bool terminate = clock::now() - start >= std::chrono::seconds{1};
    auto n = signal_backends(conn, job_id, terminate ? "pg_terminate_backend" : "pg_cancel_backend");
    if (!n)
      return std::move(n.error());
    if (first < 0)
      first = *n;
    if (*n == 0)
      return first;
    if (clock::now() - start >= bound)
      return make_error(ec::pg_statement_failed,
                        "a statement of job " + std::string{job_id} + " is still running after "
                          + std::to_string(bound.count()) + " ms");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{200});
  }
}

caf::expected<int> cancel_backends_of_job(session& conn, std::string_view job_id) {
  // pg_cancel_backend raises an error (42501) for a backend we may not
  // signal, which would abort the whole statement: such backends are
  // filtered out first (job_backends).
  return signal_backends(conn, job_id, "pg_cancel_backend");
}

} // namespace batchq::pg
