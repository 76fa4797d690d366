// The results route of the HTTP API (SPEC §11; docs/results.md, docs/http-api.md):
// `GET .../sql/job/{id}/results/{step}` for an already admitted caller —
// one JSON page of a kept step's rows (`limit`, `cursor`), or every kept row
// as CSV (`?format=csv` or `Accept: text/csv`), streamed in batches.
//
// Round trips: the job's HGETALL (its meta and columns are fields of the
// hash), then one LRANGE per page, or per 1,000 rows of CSV.
//
// Thread safety: as the job routes (jobs.hpp).
#pragma once

#include <string>

#include <httplib.h>

#include "src/http/auth.hpp"
#include "src/http/context.hpp"

namespace batchq::http {

/// Largest `limit` of a results page.
inline constexpr int64_t max_result_rows = 10000;

void get_results(context& ctx, const httplib::Request& req, httplib::Response& res,
                 const caller& who, const std::string& job_id, const std::string& step);

} // namespace batchq::http
