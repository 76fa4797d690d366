// Typed operations over batchq's Redis data model (SPEC §4, §5, §7).
//
// Each function is one atomic Lua script (src/redis/scripts/<name>.lua) or one
// plain command, and costs ONE round trip on a warm connection (see
// docs/redis-layout.md for the table); the exceptions say so. This layer does
// not know what a job looks like: callers pass the hash fields as
// field/value pairs (src/job produces them) and get them back as a map.
//
// Errors (caf::expected): redis_unavailable, redis_error (unexpected Redis
// errors), lease_lost (a fenced write by a non-holder; nothing was written),
// queue_full, job_not_found, job_exists, invalid_transition (a compare-and-set
// guard failed). Every script changes nothing when it returns an error.
//
// Thread safety: the functions keep no state; the `client&` they take must not
// be used by another thread at the same time (see client.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"

namespace batchq::redis {

/// Hash fields to write, in order.
using field_list = std::vector<std::pair<std::string, std::string>>;
/// A hash as read back.
using field_map = std::map<std::string, std::string>;

/// A random token (a lower-case UUID v4) for leases and capacity slots.
std::string random_token();

/// The current UTC time as ISO 8601 with milliseconds, e.g.
/// `2026-11-28T17:36:10.905Z` (SPEC §3.4), used for `updated_at` defaults.
std::string iso8601_now();

// -- jobs ---------------------------------------------------------------------

/// Stores job `job_id` (hash batch:jobs:{id} := fields) and enqueues it for
/// `user`: LPUSH batch:queue:{user}, SADD batch:indexes:queue, PUBLISH
/// batch:users. `created_at` and `updated_at` are added (now) when `fields`
/// lacks them. `max_queued` <= 0 means no limit.
/// REQUIRES: !fields.empty().
/// Returns the queue length after the push.
/// Errors: queue_full ("Failed to create job. Max number of jobs (<n>) queued
/// reached") when the queue already holds `max_queued` ids; job_exists.
caf::expected<int64_t> create_job(client& c, const std::string& job_id, const std::string& user,
                                  field_list fields, int64_t max_queued);

/// What the API's create adds to the plain create above.
struct create_options {
  /// batch.max-queued-jobs (<= 0: no limit).
  int64_t max_queued = 0;
  /// The job's creation time in ms since the epoch: its place in the user's
  /// job index (keys::user_jobs). 0 = now.
  int64_t created_ms = 0;
  /// An `Idempotency-Key` (SPEC §8): when `batch:idempotency:{user}:{key}`
  /// exists, nothing is created and the original job is returned; otherwise
  /// the job is created and the key set to its id for `idempotency_ttl`.
  /// Empty: no idempotency.
  std::string idempotency_key;
  std::chrono::seconds idempotency_ttl{86400};
};

struct create_outcome {
  /// True when this call created the job; false for a repeated Idempotency-Key.
  bool created = true;
  /// The created job's id, or the original job's id for a repeated key.
  std::string job_id;
  /// When created: the queue length after the push.
  int64_t queue_length = 0;
  /// When !created: the original job's hash as it is now (nullopt when it has
  /// expired since).
  std::optional<field_map> original;
};

/// create_job (same fields, same errors, same atomic script and ONE round
/// trip) with the API's extras: every job created here is also indexed for
/// list_jobs (the plain overload indexes too), and an idempotency key may
/// short-circuit the create. A repeated key wins over queue_full.
caf::expected<create_outcome> create_job(client& c, const std::string& job_id,
                                         const std::string& user, field_list fields,
                                         const create_options& opts);

/// One page of list_jobs: jobs newest first with their hashes, and the cursor
/// of the next page (nullopt at the end).
struct job_page {
  std::vector<std::pair<std::string, field_map>> jobs;
  std::optional<std::string> next;
};

/// The user's jobs created through create_job, newest first (`job_list`, one
/// round trip): at most `limit` (>= 1) jobs after `cursor` ("" = from the
/// newest; else a `next` from an earlier page) whose status is in `statuses`
/// (empty: any). Index entries whose job expired are dropped on the way. At
/// most `budget` index entries are examined per call, so a filtered page may
/// be short while `next` is set; only `next == nullopt` means the end. Jobs
/// written by CARTO's own API are not in the index and never listed.
/// Errors: redis_unavailable, redis_error.
caf::expected<job_page> list_jobs(client& c, const std::string& user, int64_t limit,
                                  const std::string& cursor,
                                  const std::vector<std::string>& statuses,
                                  int64_t budget = 1000);

struct dequeued_job {
  std::string job_id;
  /// The job's hash after `claim_fields` were written.
  field_map fields;
};

/// Fenced by `lease_token`: pops the user's next job whose status is `pending`
/// (dropping ids whose job is gone or no longer pending), writes `claim_fields`
/// into it (pass e.g. status=running, started_at, node so a job never sits in
/// work in progress as pending), moves the id to batch:wip:user:{user} and
/// returns it with its hash: dequeue + read = 1 round trip. Returns nullopt
/// when the queue is empty; the user then leaves batch:indexes:queue.
/// Errors: lease_lost.
caf::expected<std::optional<dequeued_job>> dequeue_job(client& c, const std::string& user,
                                                       const std::string& lease_token,
                                                       const field_list& claim_fields = {});

/// Fenced: puts the job back at the head of its user's queue (it runs next),
/// writes `fields` (e.g. status=pending and step statuses; `updated_at` is
/// added when missing), deletes `remove_fields`, removes any TTL, leaves work in
/// progress, re-indexes the user and publishes it. Returns the queue length.
/// Errors: lease_lost, job_not_found (no hash, or another user's job).
caf::expected<int64_t> requeue_job(client& c, const std::string& job_id, const std::string& user,
                                   const std::string& lease_token, field_list fields,
                                   const std::vector<std::string>& remove_fields = {});

/// How write_job treats the status being written.
struct write_mode {
  /// The written status is final (done, failed, cancelled, unknown): the hash
  /// expires after `ttl_seconds` (<= 0: never) and the id leaves work in progress.
  bool final = false;
  int64_t ttl_seconds = 7200;
  /// When not empty, the write happens only if the stored status equals it
  /// (compare-and-set); else invalid_transition.
  std::string expected_status;
  /// Optional fields the job no longer has, deleted in the same script (HDEL);
  /// src/job's state_fields().del.
  std::vector<std::string> remove_fields;
};

/// Fenced status write (one per status change): checks the lease token,
/// writes `fields` (`updated_at` is added when missing), and on a final status
/// sets the TTL and removes the id from work in progress.
/// Errors: lease_lost, job_not_found, invalid_transition (expected_status
/// mismatch; the context names the stored status).
caf::expected<void> write_job(client& c, const std::string& job_id, const std::string& user,
                              const std::string& lease_token, field_list fields,
                              const write_mode& mode);

struct cancel_outcome {
  /// True when the job was pending and is now cancelled.
  bool cancelled = false;
  /// When !cancelled: the job's current status (the caller answers `Cannot set
  /// status from <status> to cancelled` or cancels the running statement).
  std::string status;
};

/// Not fenced, atomic: if the job is pending, writes `fields` (status
/// cancelled, steps skipped; `updated_at` added when missing), removes it from
/// the queue (and from work in progress if it was dequeued but never started)
/// and sets the TTL. Otherwise changes nothing and reports the status.
/// Errors: job_not_found (no hash, or another user's job).
caf::expected<cancel_outcome> cancel_pending_job(client& c, const std::string& job_id,
                                                 const std::string& user, field_list fields,
                                                 int64_t ttl_seconds);

/// Fenced: drops `job_id` from batch:wip:user:{user} without touching any hash
/// (for orphaned entries whose hash is gone). Returns how many entries went.
caf::expected<int64_t> remove_from_wip(client& c, const std::string& job_id,
                                       const std::string& user, const std::string& lease_token);

/// HGETALL batch:jobs:{id}; nullopt when the job does not exist.
caf::expected<std::optional<field_map>> read_job(client& c, const std::string& job_id);

// -- indexes and work in progress --------------------------------------------

/// SMEMBERS batch:indexes:queue (users said to have queued jobs).
caf::expected<std::vector<std::string>> queued_users(client& c);

/// Every key matching the glob `pattern` (escape literal parts with
/// keys::escape_glob), and only keys of Redis type `type` when it is not
/// empty ("list", "hash", ...), found with SCAN to the end: 1 round trip per
/// 1000 keys scanned. Sorted, each key once (SCAN may return a key twice).
caf::expected<std::vector<std::string>> scan_keys(client& c, const std::string& pattern,
                                                  const std::string& type = "");

/// Users that own a non-empty batch:queue:{user} list, found with scan_keys
/// (1 round trip per 1000 keys scanned); sorted, each once.
caf::expected<std::vector<std::string>> scan_queue_users(client& c);

/// scan_queue_users, then SADD them all to batch:indexes:queue (SPEC §2
/// subscriber start-up). Returns the users found. Stale index entries are left
/// alone: dequeue removes a user whose queue is empty.
caf::expected<std::vector<std::string>> rebuild_queue_index(client& c);

/// LRANGE batch:queue:{user} 0 -1: head first, so the NEXT job is the LAST id.
caf::expected<std::vector<std::string>> queued_job_ids(client& c, const std::string& user);

/// SMEMBERS batch:wip:users.
caf::expected<std::vector<std::string>> wip_users(client& c);

/// LRANGE batch:wip:user:{user} 0 -1 (most recently dequeued first).
caf::expected<std::vector<std::string>> wip_job_ids(client& c, const std::string& user);

/// The users whose work in progress is orphaned (SPEC §7 crash sweep): in
/// batch:wip:users with a non-empty batch:wip:user:{user} and no lease
/// batch:locks:user:{user} (`wip_orphans`, read-only, one round trip). The
/// caller must take a user's lease before recovering its jobs.
caf::expected<std::vector<std::string>> wip_orphans(client& c);

// -- user lease (SPEC §5) ------------------------------------------------------

/// SET NX PX: true when `token` now holds the user's lease (also when it
/// already did: the TTL is refreshed), false when another token holds it.
caf::expected<bool> acquire_lease(client& c, const std::string& user, const std::string& token,
                                  std::chrono::milliseconds ttl);

/// Compare-and-pexpire. Errors: lease_lost when `token` does not hold it.
caf::expected<void> renew_lease(client& c, const std::string& user, const std::string& token,
                                std::chrono::milliseconds ttl);

/// Compare-and-delete: true when released, false when `token` did not hold it
/// (then nothing changes).
caf::expected<bool> release_lease(client& c, const std::string& user, const std::string& token);

enum class idle_release { released, queue_not_empty };

/// Releases the lease only if the user's queue is empty (and then removes the
/// user from batch:indexes:queue); otherwise keeps it, so a job enqueued after
/// the last dequeue is never left without a lease holder.
/// Errors: lease_lost when `token` does not hold the lease.
caf::expected<idle_release> release_lease_if_idle(client& c, const std::string& user,
                                                  const std::string& token);

/// GET batch:locks:user:{user}: the holder's token, or nullopt when free.
caf::expected<std::optional<std::string>> lease_holder(client& c, const std::string& user);

// -- DB-host capacity (SPEC §5) -------------------------------------------------

/// Takes one of `capacity` cluster-wide statement slots of `db_host` for
/// `ttl`: true when held (also when `slot_token` already held it: extended),
/// false when the host is at capacity. Expired slots are pruned first.
caf::expected<bool> acquire_capacity(client& c, const std::string& db_host, int64_t capacity,
                                     const std::string& slot_token,
                                     std::chrono::milliseconds ttl);

/// Extends a held slot. Errors: lease_lost when the slot expired (and was
/// pruned) or was released: the holder no longer counts and must re-acquire.
caf::expected<void> renew_capacity(client& c, const std::string& db_host,
                                   const std::string& slot_token, std::chrono::milliseconds ttl);

/// Gives a slot back: true when it was held.
caf::expected<bool> release_capacity(client& c, const std::string& db_host,
                                     const std::string& slot_token);

} // namespace batchq::redis
