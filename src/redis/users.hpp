// User accounts in CARTO's metadata layout (SPEC §4): `rails:users:{user}` and
// `api_keys:{user}:{token}` in the metadata DB 5. Written by `batchq user
// add|remove` and `batchq dev`; read by the HTTP API (who is this user, is this
// key theirs, which database role) and by the job runner (the role's password,
// looked up at run time, never copied into a job).
//
//   rails:users:{user}       id, database_host, database_name, database_port?,
//                            map_key (the token of the user's master key)
//   api_keys:{user}:{token}  user, type (master|default|regular), grants_sql
//                            (true|false), database_role, database_password
//
// Thread safety: stateless functions over a caller-owned client (client.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"

namespace batchq::redis {

/// The metadata DB (SPEC §4): rails:users, api_keys, limits:batch.
inline constexpr int metadata_db = 5;

/// A user and the database their jobs run in.
struct user_account {
  std::string user;
  std::string database_host = "127.0.0.1";
  std::string database_name;
  /// Omitted from the record when unset (then postgres.port applies).
  std::optional<uint16_t> database_port;
  /// The master key's database role and its password.
  std::string database_role;
  std::string database_password;
};

/// One api_keys record, as the API reads it.
struct api_key_record {
  std::string user;
  std::string type;          // master | default | regular
  bool grants_sql = false;   // grants_sql == "true"
  std::string database_role;
  // database_password is never read by the API.
};

/// Writes both records in one MULTI/EXEC (one round trip) with a new master key
/// and returns its token. An existing user is replaced: its previous master
/// key record (the old map_key) is deleted in the same transaction.
/// `key`: use this token instead of a random one (dev mode's fixed demo key).
/// Errors: redis_unavailable, redis_error, invalid_config (an empty user name,
/// database name or role, or a user name with ':' or whitespace).
caf::expected<std::string> add_user(client& metadata, const user_account& account,
                                    const std::optional<std::string>& key = std::nullopt);

/// The names of every user with a `rails:users:{user}` hash, sorted (SCAN).
caf::expected<std::vector<std::string>> list_users(client& metadata);

/// Deletes `rails:users:{user}` and every `api_keys:{user}:*`. Returns false
/// when the user did not exist (nothing changed).
caf::expected<bool> remove_user(client& metadata, const std::string& user);

/// The commands behind read_user and read_api_key and the parsing of their
/// replies, for callers that pipeline them with other commands (the API reads
/// a user and a key in one round trip).
std::vector<std::string> read_user_command(const std::string& user);
/// nullopt when the reply is empty (no such user). A database_port that is not
/// a port number is left unset.
std::optional<user_account> user_from_reply(const std::string& user, const reply& r);
std::vector<std::string> read_api_key_command(const std::string& user, const std::string& token);
/// nullopt when every field is nil (no such key). Errors: redis_error (not an
/// HMGET reply of four fields).
caf::expected<std::optional<api_key_record>> api_key_from_reply(const reply& r);

/// HGETALL rails:users:{user}: nullopt when the user does not exist.
caf::expected<std::optional<user_account>> read_user(client& metadata, const std::string& user);

/// HMGET api_keys:{user}:{token}: nullopt when there is no such key.
caf::expected<std::optional<api_key_record>> read_api_key(client& metadata,
                                                          const std::string& user,
                                                          const std::string& token);

} // namespace batchq::redis
