#include "src/redis/users.hpp"

#include <algorithm>
#include <random>

#include "messages/error.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

namespace batchq::redis {

namespace {

caf::error check_account(const user_account& a) {
  if (a.user.empty())
    return make_error(ec::invalid_config, "the user name is empty");
  auto bad = std::find_if(a.user.begin(), a.user.end(), [](char c) {
    return c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
  });
  if (bad != a.user.end())
    return make_error(ec::invalid_config, "the user name '" + a.user
                                            + "' contains ':' or whitespace");
  if (a.database_name.empty())
    return make_error(ec::invalid_config, "the database name is empty");
  if (a.database_role.empty())
    return make_error(ec::invalid_config, "the database role is empty");
  return caf::none;
}

/// A positive decimal id for `rails:users.id` (CARTO stores a number there;
/// batchq only checks that it is present).
std::string random_id() {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist{1, 2147483647u};
  return std::to_string(dist(rd));
}

/// Runs `commands` inside MULTI/EXEC in one pipeline; fails if any is refused.
caf::expected<void> transaction(client& c, std::vector<std::vector<std::string>> commands) {
  commands.insert(commands.begin(), {"MULTI"});
  commands.push_back({"EXEC"});
  auto replies = c.pipeline(commands);
  if (!replies)
    return std::move(replies.error());
  for (const auto& r : *replies)
    if (r.is_error())
      return make_error(ec::redis_error, r.str);
  if (replies->back().is_nil())
    return make_error(ec::redis_error, "transaction aborted");
  return {};
}

} // namespace

caf::expected<std::string> add_user(client& metadata, const user_account& account,
                                    const std::optional<std::string>& key) {
  if (auto err = check_account(account))
    return err;
  auto token = key ? *key : random_token();
  auto user_key = keys::rails_user(account.user);
  auto old_key = metadata.command({"HGET", user_key, "map_key"});
  if (!old_key)
    return std::move(old_key.error());

  std::vector<std::vector<std::string>> cmds;
  if (old_key->is_string() && !old_key->str.empty() && old_key->str != token)
    cmds.push_back({"DEL", keys::api_key(account.user, old_key->str)});
  cmds.push_back({"DEL", user_key});
  std::vector<std::string> hset{"HSET",          user_key,
                                "id",            random_id(),
                                "database_host", account.database_host,
                                "database_name", account.database_name,
                                "map_key",       token};
  if (account.database_port) {
    hset.push_back("database_port");
    hset.push_back(std::to_string(*account.database_port));
  }
  cmds.push_back(std::move(hset));
  cmds.push_back({"HSET", keys::api_key(account.user, token), "user", account.user, "type",
                  "master", "grants_sql", "true", "database_role", account.database_role,
                  "database_password", account.database_password});
  if (auto r = transaction(metadata, std::move(cmds)); !r)
    return std::move(r.error());
  return token;
}

caf::expected<std::vector<std::string>> list_users(client& metadata) {
  const std::string prefix = keys::rails_user("");
  auto found = scan_keys(metadata, keys::escape_glob(prefix) + "*");
  if (!found)
    return found;
  std::vector<std::string> users;
  for (auto& k : *found)
    if (k.size() > prefix.size())
      users.push_back(k.substr(prefix.size()));
  return users;
}

caf::expected<bool> remove_user(client& metadata, const std::string& user) {
  auto user_key = keys::rails_user(user);
  auto api_keys = scan_keys(metadata, keys::escape_glob(keys::api_key(user, "")) + "*");
  if (!api_keys)
    return std::move(api_keys.error());
  std::vector<std::string> del{"DEL", user_key, keys::role_keys(user)};
  del.insert(del.end(), api_keys->begin(), api_keys->end());
  // EXISTS and DEL in one round trip: whether the user existed before.
  auto r = metadata.pipeline({{"EXISTS", user_key}, del});
  if (!r)
    return std::move(r.error());
  for (const auto& x : *r)
    if (x.is_error())
      return make_error(ec::redis_error, x.str);
  return (*r)[0].integer == 1;
}

std::vector<std::string> read_user_command(const std::string& user) {
  return {"HGETALL", keys::rails_user(user)};
}

std::optional<user_account> user_from_reply(const std::string& user, const reply& r) {
  if (!r.is_array() || r.elements.empty())
    return std::nullopt;
  user_account a;
  a.user = user;
  a.database_host.clear();
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const auto& f = r.elements[i].str;
    const auto& v = r.elements[i + 1].str;
    if (f == "database_host")
      a.database_host = v;
    else if (f == "database_name")
      a.database_name = v;
    else if (f == "database_port") {
      // An unreadable port: postgres.port applies, as when it is absent.
      bool digits = !v.empty() && v.size() <= 5
                    && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits) {
        auto p = std::stol(v);
        if (p >= 1 && p <= 65535)
          a.database_port = static_cast<uint16_t>(p);
      }
    }
  }
  return a;
}

std::vector<std::string> read_api_key_command(const std::string& user, const std::string& token) {
  return {"HMGET", keys::api_key(user, token), "user", "type", "grants_sql", "database_role"};
}

caf::expected<std::optional<api_key_record>> api_key_from_reply(const reply& r) {
  if (!r.is_array() || r.elements.size() != 4)
    return make_error(ec::redis_error, "unexpected HMGET reply: " + r.to_string());
  const auto& e = r.elements;
  if (e[0].is_nil() && e[1].is_nil() && e[2].is_nil() && e[3].is_nil())
    return std::optional<api_key_record>{};
  api_key_record k;
  k.user = e[0].str;
  k.type = e[1].str;
  k.grants_sql = e[2].str == "true";
  k.database_role = e[3].str;
  return std::optional<api_key_record>{std::move(k)};
}

caf::expected<std::optional<user_account>> read_user(client& metadata, const std::string& user) {
  auto r = metadata.command(read_user_command(user));
  if (!r)
    return std::move(r.error());
  return user_from_reply(user, *r);
}

caf::expected<std::optional<api_key_record>> read_api_key(client& metadata,
                                                          const std::string& user,
                                                          const std::string& token) {
  auto r = metadata.command(read_api_key_command(user, token));
  if (!r)
    return std::move(r.error());
  return api_key_from_reply(*r);
}

} // namespace batchq::redis
