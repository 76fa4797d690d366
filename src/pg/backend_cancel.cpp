#include "src/pg/backend_cancel.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include "messages/error.hpp"

namespace batchq::pg {

caf::expected<int> cancel_backends_of_job(session& conn, std::string_view job_id) {
  // pg_cancel_backend raises an error (42501) for a backend we may not
  // signal, which would abort the whole statement: such backends are filtered
  // out first (same rules as PostgreSQL: a member of the backend's role or of
  // pg_signal_backend; only a superuser may signal a superuser's backend).
  static constexpr const char* sql =
    "SELECT count(*) FILTER (WHERE pg_cancel_backend(a.pid)) "
    "FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
    "WHERE a.pid <> pg_backend_pid() AND a.state = 'active' "
    "AND left(a.query, length($1)) = $1 "
    "AND (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER')) "
    "AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))";
  std::vector<std::string> params{"/* " + std::string{job_id} + " */ "};
  auto v = conn.query_value(sql, params);
  if (!v)
    return std::move(v.error());
  if (!*v)
    return 0;
  return std::atoi((*v)->c_str());
}

} // namespace batchq::pg
