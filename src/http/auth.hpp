// Who is calling, and may they (SPEC §8; docs/http-api.md "Authentication"):
// the user from the path or the Host header, the API key the request
// presents, the account and key records read from the metadata DB in one
// pipelined round trip, and the checks every job route makes, in this order:
//   1. unknown user (no rails:users:{user} hash)  404 Sorry, we can't find user '<user>'.
//   2. body larger than api.max-payload           400 Your payload is too large: ...
//   3. no key                                     403 permission denied
//      a key with no api_keys:{user}:{key} record 401 Unauthorized
//      master -> allowed; regular with grants_sql -> allowed only with
//      api.allow-regular-keys; anything else      403 permission denied
// The key's database_password is never read.
//
// Thread safety: pure functions, and admit() over the context's pools
// (thread-safe); each call uses the request and response of one handler.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include <caf/expected.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "src/http/context.hpp"
#include "src/http/errors.hpp"
#include "src/redis/users.hpp"

namespace batchq::http {

/// The user a request addresses: `path_user` when not empty, else the first
/// group of `user_from_host` searched in `host` (`Host: 127.0.0.1:8080` ->
/// "127" with the default `^([^.]+)\.`), else "".
std::string user_of(const std::string& path_user, const std::string& host,
                    const std::regex& user_from_host);

/// The key a request presents ("" = none).
struct presented_key {
  std::string key;
  /// Where it came from: "basic", "bearer", "api_key", "map_key" (logs, tests).
  std::string source;
};

/// The first of: `Authorization: Basic` (the password part; the user part
/// must be `user`, else the header presents no key), `Authorization: Bearer
/// <key>`, then `api_key`, then `map_key` among `fields` (the URL query string
/// merged with the body, job::request_fields). Empty values count as absent.
presented_key find_key(const std::string& authorization, const nlohmann::json& fields,
                       const std::string& user);

/// RFC 4648 base64 (standard alphabet, padding optional); nullopt when `text`
/// is not base64.
std::optional<std::string> base64_decode(std::string_view text);

/// The account of an admitted caller.
struct caller {
  std::string user;
  /// rails:users:{user}: where the user's jobs run.
  std::string database_host;
  std::string database_name;
  std::optional<uint16_t> database_port;
  /// The key's database_role: the job's dbuser.
  std::string database_role;
};

/// What the metadata DB says about a user and a key.
struct account_lookup {
  /// nullopt: no rails:users:{user} hash.
  std::optional<caller> account;
  /// nullopt: no key asked, or no api_keys:{user}:{key} record.
  std::optional<redis::api_key_record> key;
};

/// HGETALL rails:users:{user} and, when `key` is not empty, HMGET of the key
/// record's user, type, grants_sql, database_role: ONE pipelined round trip.
/// Errors: redis_unavailable, redis_error.
caf::expected<account_lookup> read_account(redis::client& meta, const std::string& user,
                                           const std::string& key);

enum class key_verdict { allowed, no_key, unknown_key, not_allowed };

/// The SPEC §8 rule for a presented key and its record.
key_verdict judge_key(bool presented, const std::optional<redis::api_key_record>& record,
                      bool allow_regular_keys);

std::string unknown_user_message(const std::string& user);
std::string payload_message(uint64_t received, int64_t max);

/// Runs checks 1-3 for a job route. `path_user` is the route's `/user/{user}`
/// group ("" when absent). On success the caller; otherwise the error answer
/// is written into `res` and nullopt returned. Redis errors answer 503.
/// `body` is the request body as received (read whole by the transport, a
/// multipart body as none: see server.cpp).
std::optional<caller> admit(context& ctx, const httplib::Request& req, std::string_view body,
                            httplib::Response& res, const std::string& path_user);

/// The URL query string of `req` (raw, after '?'; "" when none).
std::string url_query(const httplib::Request& req);

} // namespace batchq::http
