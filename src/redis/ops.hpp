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
  /// For an orphan: the node named in its `node` field is still registered.
  bool owner_alive = false;
};

struct cancel_outcome {
  /// True when the job was pending and is now cancelled.
  bool cancelled = false;
  /// When !cancelled: the job's current status (the caller answers `Cannot set
  /// status from <status> to cancelled` or cancels the running statement).
  std::string status;
  /// When running: the node that runs it (its `node` field; "" for none).
  std::string node;
};

/// Not fenced, atomic: if the job is pending, writes `fields` (status
/// cancelled, steps skipped; `updated_at` added when missing), removes it from
/// the queue (and from work in progress if it was dequeued but never started)
/// and sets the TTL. Otherwise changes nothing and reports the status.
/// Errors: job_not_found (no hash, or another user's job).
caf::expected<cancel_outcome> cancel_pending_job(client& c, const std::string& job_id,
                                                 const std::string& user, field_list fields,
                                                 int64_t ttl_seconds);

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

// -- user lease (SPEC §5; taken and given back by turn_step, turns.hpp) ---------

/// GET batch:locks:user:{user}: the holder's token, or nullopt when free.
caf::expected<std::optional<std::string>> lease_holder(client& c, const std::string& user);

} // namespace batchq::redis
