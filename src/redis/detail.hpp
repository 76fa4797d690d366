// Internals shared by the typed operations of src/redis (ops.cpp, turns.cpp):
// running an embedded script with batchq's error mapping, and converting
// field lists and replies. Not for use outside src/redis.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/script.hpp"

namespace batchq::redis::detail {

/// Maps the error replies of batchq's scripts ("CODE detail") to batchq codes
/// (LEASE_LOST -> lease_lost, JOB_NOT_FOUND -> job_not_found, QUEUE_FULL ->
/// queue_full, JOB_EXISTS -> job_exists, STATUS_CHANGED, NOT_RUNNING and FENCED ->
/// invalid_transition);
/// other errors pass through unchanged.
caf::error map_script_error(caf::error err);

/// client::eval with map_script_error applied.
caf::expected<reply> run(client& c, const script& s, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args);

/// "unexpected reply from script <name>: <reply>" (ec::redis_error).
caf::error unexpected(const script& s, const reply& r);

bool has_field(const field_list& fields, std::string_view name);
void add_if_missing(field_list& fields, std::string_view name, const std::string& value);
void append_pairs(std::vector<std::string>& args, const field_list& fields);

/// A flat {field, value, ...} array reply as a map.
field_map to_map(const reply& flat);

} // namespace batchq::redis::detail
