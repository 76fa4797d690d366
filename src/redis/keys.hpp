// Redis key and channel names of batchq's data model (SPEC §4, §5), in one
// place. The layout, who writes what and with which script:
// docs/redis-layout.md. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace batchq::redis::keys {

inline constexpr std::string_view job_prefix = "batch:jobs:";
inline constexpr std::string_view queue_prefix = "batch:queue:";
inline constexpr std::string_view wip_user_prefix = "batch:wip:user:";
inline constexpr std::string_view lock_user_prefix = "batch:locks:user:";
inline constexpr std::string_view capacity_prefix = "batch:capacity:";
inline constexpr std::string_view node_prefix = "batch:nodes:";

/// Set: users that have queued jobs.
inline constexpr std::string_view queue_index = "batch:indexes:queue";
/// Set: users that have jobs in work in progress.
inline constexpr std::string_view wip_users = "batch:wip:users";
/// Pub/sub channel; message = a username, published after every enqueue.
inline constexpr std::string_view users_channel = "batch:users";
/// Pub/sub channel (batchq's own); message = a job id, published by turn.lua
/// and job_cancel_pending.lua (the same literal) when the job became final:
/// the API's long-polls wait for it instead of polling the job.
inline constexpr std::string_view jobs_final_channel = "batchq:jobs:final";

/// Hash `batch:jobs:{job_id}`.
std::string job(std::string_view job_id);
/// List `batch:queue:{user}`: new ids LPUSH, next job RPOP, "run next" RPUSH.
std::string queue(std::string_view user);
/// List `batch:wip:user:{user}`: ids of the user's jobs being run.
std::string wip_user(std::string_view user);
/// String `batch:locks:user:{user}`: the user lease (value = holder's token).
std::string lock_user(std::string_view user);
/// Sorted set `batch:capacity:{host}`: DB-host slot tokens scored by expiry (ms).
std::string capacity(std::string_view db_host);
/// Hash `batch:nodes:{node_id}`: a node's registration.
std::string node(std::string_view node_id);
/// Sorted set `batch:indexes:jobs:{user}`: the user's batchq-created jobs for
/// `GET .../sql/job`, all scored 0 and read BYLEX; members
/// `<order, 15 digits>:<job_id>` where order is the creation ms, made strictly
/// increasing per user by the create script (job_create.lua).
std::string user_jobs(std::string_view user);
/// String `batch:idempotency:{user}:{key}`: the job id an `Idempotency-Key`
/// created (TTL 24 h).
std::string idempotency(std::string_view user, std::string_view key);
/// Hash `rails:users:{user}` (metadata DB).
std::string rails_user(std::string_view user);
/// Hash `api_keys:{user}:{token}` (metadata DB).
std::string api_key(std::string_view user, std::string_view token);
/// Hash `limits:batch:{user}`.
std::string limits_batch(std::string_view user);
/// Hash `batchq:role_keys:{user}` (metadata DB, batchq's own): database role ->
/// the token of the user's key record with that role, written when such a key
/// is accepted by the API, so that a runner finds a role's password with one
/// read instead of a SCAN (docs/redis-layout.md).
std::string role_keys(std::string_view user);

/// String `batchq:cancel_requested:{job_id}`: a user asked to cancel the job
/// while it ran (job_cancel_pending.lua; expires after a day at least).
std::string cancel_mark(std::string_view job_id);

/// List `batchq:results:{job_id}`: the stored rows of the job's kept steps, in
/// step order (results_begin.lua, results_append.lua; docs/results.md). It
/// expires with the job's hash.
std::string results(std::string_view job_id);

/// `text` with Redis glob metacharacters (`*`, `?`, `[`, `]`, `\`) escaped, for
/// a SCAN MATCH pattern that must match it literally.
std::string escape_glob(std::string_view text);

/// The user of a `batch:queue:{user}` key, or nullopt for another key.
std::optional<std::string> user_of_queue(std::string_view key);

} // namespace batchq::redis::keys
