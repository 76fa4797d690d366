// The job routes of the HTTP API (SPEC §8; docs/http-api.md): create, read
// (with `?wait=`), cancel, list, and work in progress, for an already admitted
// caller (auth.hpp), plus the pure parsers of their query parameters.
//
// Round trips (warm connections): create 1 (+1 auth), read 1 (+1 auth, +1 per
// wait poll, +1 after waiting), cancel = the canceller's + 1 read, list 1,
// WIP 1. Handlers never write job state except through the create script and
// the node's canceller.
//
// Thread safety: handlers run concurrently on the transport's pools; each uses
// its own request/response and checks connections out of the context's pools.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>

#include "src/http/auth.hpp"
#include "src/http/context.hpp"
#include "src/http/transport.hpp"
#include "src/redis/ops.hpp"

namespace batchq::http {

/// `?wait=` is capped at this.
inline constexpr std::chrono::milliseconds max_wait{60000};
/// `?limit=` default and maximum.
inline constexpr int64_t default_limit = 20;
inline constexpr int64_t max_limit = 100;
/// How long an Idempotency-Key is remembered.
inline constexpr std::chrono::seconds idempotency_ttl{86400};

/// A parameter's value, or the 400 message explaining why it is refused.
template <class T>
struct parsed {
  std::optional<T> value;
  std::string error;
};

/// `wait`: seconds, fractions allowed, >= 0, capped at 60 s.
parsed<std::chrono::milliseconds> parse_wait(const std::string& text);
/// `limit`: an integer from 1 to 100.
parsed<int64_t> parse_limit(const std::string& text);
/// `status`: a comma-separated list of job statuses ("" = any).
parsed<std::vector<std::string>> parse_statuses(const std::string& text);
/// `cursor`: a `next` value an earlier page returned.
bool valid_cursor(const std::string& text);
/// An Idempotency-Key: 1 to 255 visible ASCII characters.
bool valid_idempotency_key(const std::string& text);

/// HGETALL of job `id`, which must belong to `user`; nullopt after writing
/// 404 `Job with id <id> not found` (or the Redis error's answer) itself.
std::optional<redis::field_map> read_own_job(context& ctx, httplib::Response& res,
                                             const std::string& id, const std::string& user);

/// `body`: the request body as received.
void create_job(context& ctx, const httplib::Request& req, std::string_view body,
                httplib::Response& res, const caller& who);
/// `pass`: the request's place (user_gate.hpp); a `?wait=` takes a long-poll
/// place of it or answers 429.
/// Answers at once, or returns the parked long-poll of `?wait=` (it holds
/// `pass` until answered).
std::optional<parked> get_job(context& ctx, const httplib::Request& req, httplib::Response& res,
                              const caller& who, const std::string& job_id,
                              user_gate::pass pass);
void cancel_job(context& ctx, const httplib::Request& req, httplib::Response& res,
                const caller& who, const std::string& job_id);
void list_jobs(context& ctx, const httplib::Request& req, httplib::Response& res,
               const caller& who);
void jobs_wip(context& ctx, const httplib::Request& req, httplib::Response& res,
              const caller& who);

} // namespace batchq::http
