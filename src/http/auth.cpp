#include "src/http/auth.hpp"

#include <cctype>

#include "messages/error.hpp"
#include "src/job/parse.hpp"
#include "src/job/text.hpp"
#include "src/redis/keys.hpp"

namespace batchq::http {

namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i]))
        != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

/// A non-empty string field of `fields`, or "".
std::string string_field(const nlohmann::json& fields, const char* name) {
  if (!fields.is_object())
    return {};
  auto it = fields.find(name);
  if (it == fields.end() || !it->is_string())
    return {};
  return it->get<std::string>();
}

} // namespace

std::string user_of(const std::string& path_user, const std::string& host,
                    const std::regex& user_from_host) {
  if (!path_user.empty())
    return path_user;
  std::smatch m;
  if (std::regex_search(host, m, user_from_host) && m.size() > 1 && m[1].matched)
    return m[1].str();
  return {};
}

std::optional<std::string> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == '+')
      return 62;
    if (c == '/')
      return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  if (text.size() % 4 == 1)
    return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

presented_key find_key(const std::string& authorization, const nlohmann::json& fields,
                       const std::string& user) {
  auto auth = job::trim(authorization);
  if (iequals_prefix(auth, "basic ")) {
    auto decoded = base64_decode(job::trim(auth.substr(6)));
    if (decoded) {
      auto colon = decoded->find(':');
      if (colon != std::string::npos && decoded->substr(0, colon) == user
          && colon + 1 < decoded->size())
        return {decoded->substr(colon + 1), "basic"};
    }
  } else if (iequals_prefix(auth, "bearer ")) {
    auto token = job::trim(auth.substr(7));
    if (!token.empty())
      return {std::string{token}, "bearer"};
  }
  for (const char* name : {"api_key", "map_key"}) {
    auto v = string_field(fields, name);
    if (!v.empty())
      return {v, name};
  }
  return {};
}

caf::expected<account_lookup> read_account(redis::client& meta, const std::string& user,
                                           const std::string& key) {
  std::vector<std::vector<std::string>> cmds{redis::read_user_command(user)};
  if (!key.empty())
    cmds.push_back(redis::read_api_key_command(user, key));
  auto r = meta.pipeline(cmds);
  if (!r)
    return std::move(r.error());
  for (const auto& x : *r)
    if (x.is_error())
      return make_error(ec::redis_error, x.str);
  account_lookup out;
  if (auto a = redis::user_from_reply(user, (*r)[0])) {
    caller c;
    c.user = user;
    c.database_host = std::move(a->database_host);
    c.database_name = std::move(a->database_name);
    c.database_port = a->database_port; // unset: postgres.port applies
    out.account = std::move(c);
  }
  if (!key.empty()) {
    auto k = redis::api_key_from_reply((*r)[1]);
    if (!k)
      return std::move(k.error());
    out.key = std::move(*k);
  }
  return out;
}

key_verdict judge_key(bool presented, const std::optional<redis::api_key_record>& record,
                      bool allow_regular_keys) {
  if (!presented)
    return key_verdict::no_key;
  if (!record)
    return key_verdict::unknown_key;
  if (record->type == "master")
    return key_verdict::allowed;
  if (record->type == "regular" && record->grants_sql && allow_regular_keys)
    return key_verdict::allowed;
  return key_verdict::not_allowed;
}

std::string unknown_user_message(const std::string& user) {
  return "Sorry, we can't find user '" + user + "'.";
}

std::string payload_message(uint64_t received, int64_t max) {
  return "Your payload is too large: " + std::to_string(received)
         + " bytes. Max size allowed is " + std::to_string(max) + " bytes.";
}

std::string url_query(const httplib::Request& req) {
  auto q = req.target.find('?');
  return q == std::string::npos ? std::string{} : req.target.substr(q + 1);
}

std::optional<caller> admit(context& ctx, const httplib::Request& req, std::string_view body,
                            httplib::Response& res, const std::string& path_user) {
  auto user = user_of(path_user, req.get_header_value("Host"), ctx.user_from_host);
  auto too_large = static_cast<int64_t>(body.size()) > ctx.cfg.api_max_payload;

  // The key, unless the body is too large to be read (then only the user check
  // matters). A body that does not parse presents no key from the body.
  presented_key key;
  if (!too_large) {
    auto fields = job::request_fields(body, req.get_header_value("Content-Type"),
                                      url_query(req));
    if (!fields) // the URL query alone still counts
      fields = job::request_fields("", "", url_query(req));
    key = find_key(req.get_header_value("Authorization"),
                   fields ? *fields : nlohmann::json::object(), user);
  }

  account_lookup found;
  {
    auto meta = ctx.meta.checkout();
    auto r = read_account(*meta, user, key.key);
    if (!r) {
      write_error(res, r.error());
      return std::nullopt;
    }
    found = std::move(*r);
  }
  if (!found.account) {
    write_error(res, 404, unknown_user_message(user));
    return std::nullopt;
  }
  if (too_large) {
    write_error(res, 400, payload_message(body.size(), ctx.cfg.api_max_payload));
    return std::nullopt;
  }
  switch (judge_key(!key.key.empty(), found.key, ctx.cfg.api_allow_regular_keys)) {
    case key_verdict::allowed:
      break;
    case key_verdict::unknown_key:
      write_error(res, 401, "Unauthorized");
      return std::nullopt;
    case key_verdict::no_key:
    case key_verdict::not_allowed:
      write_error(res, 403, "permission denied");
      return std::nullopt;
  }
  found.account->database_role = found.key->database_role;
  if (req.method == "POST" && found.key->type != "master" && !found.key->database_role.empty()
      && ctx.role_key_due(user, found.key->database_role, key.key)) {
    // The runner of the job being created finds this role's password through
    // the index (one read, never a SCAN): name the key that carries it. One
    // round trip per user, role and key a minute per node, only for creates.
    auto meta = ctx.meta.checkout();
    auto r = meta->command({"HSET", redis::keys::role_keys(user), found.key->database_role,
                            key.key});
    if (!r) {
      write_error(res, r.error());
      return std::nullopt;
    }
    if (!r->is_error())
      ctx.role_key_written(user, found.key->database_role, key.key);
  }
  return found.account;
}

} // namespace batchq::http
