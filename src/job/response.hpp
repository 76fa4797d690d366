// The job as clients see it (SPEC §3.6; docs/job-format.md "Response body"): the
// JSON body of POST/GET/DELETE .../sql/job answers, echoing the submitted shape.
// Never contains host, port, dbname, dbuser, pass, the node id or a key.
// Pure functions.
#pragma once

#include "src/job/job.hpp"

#include <nlohmann/json.hpp>

namespace batchq::job {

/// One step as a JSON object, keys in this order: query, status, failed_reason?,
/// onsuccess?, onerror?, timeout?, id?, fallback_status? (only when the step has a
/// fallback), fallback_failed_reason?, started_at?, ended_at?, results? (as
/// submitted). The same object is stored inside the record's `query` (CARTO's
/// layout plus batchq's extra keys). `for_response`: `results` is instead
/// {"rows", "bytes", "truncated"} once the step's kept rows are complete.
nlohmann::ordered_json step_json(const step& s, bool for_response = false);

/// The job's `query` value, as echoed and as stored: the SQL string (simple), an
/// array of step objects (multiple, unified), or CARTO's nested object
/// {"query": [steps...], "onsuccess"?, "onerror"?} (nested).
nlohmann::ordered_json query_json(const job& j, bool for_response = false);

/// The response body: job_id, user, status, query, created_at, updated_at, and
/// when set failed_reason, fallback_status, fallback_failed_reason, and (except for
/// the nested shape, which keeps them inside `query`) onsuccess, onerror; and
/// `"results": true` when a step keeps its rows (SPEC §11).
nlohmann::ordered_json to_response(const job& j);

} // namespace batchq::job
