// `batchq user add|list|remove`: the accounts of the API, written straight
// into Redis' metadata DB 5 (`rails:users:{user}` + `api_keys:{user}:{token}`,
// SPEC §4) through src/redis/users.hpp. No HTTP, no API key: this is the
// operator's tool that creates the keys. `user add` is the only place batchq
// ever prints a key. docs/cli.md.
#include <iostream>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "messages/error.hpp"
#include "src/cli/command.hpp"
#include "src/cli/options.hpp"
#include "src/redis/client.hpp"
#include "src/redis/users.hpp"

namespace batchq::cli {

namespace {

using json = nlohmann::ordered_json;

/// What every `user` subcommand takes to find Redis.
struct redis_location {
  std::string config_file;
  std::vector<std::string> flags;
  bool json = false;
};

struct user_add_options {
  redis_location where;
  redis::user_account account;
  int port = 0; // 0: not given
  bool replace = false;
};

struct user_name_options {
  redis_location where;
  std::string name;
};

const char* user_footer =
  "\nAccounts live in Redis' metadata DB 5 (`rails:users:{user}` and\n"
  "`api_keys:{user}:{token}`, CARTO's layout), which every node reads. These\n"
  "commands talk to Redis directly (no API key needed); Redis is found like\n"
  "`batchq serve` finds it: --config-file=PATH and --redis.host=HOST\n"
  "--redis.port=PORT flags (redis.db does not matter: accounts are always in DB 5).\n"
  "\nExit status: 0 done; 1 Redis unreachable, the user exists (add without\n"
  "--replace) or does not (remove); 2 bad usage or bad configuration.\n";

const char* user_add_footer =
  "\nCreates the account NAME whose jobs run in database DB on HOST:PORT as ROLE,\n"
  "with a new master API key, and prints that key on stdout: the only time any\n"
  "batchq command shows a key, so keep it (a note goes to stderr). --json prints\n"
  "{\"user\": NAME, \"api_key\": KEY}. The role's password may come from the\n"
  "environment variable BATCHQ_DATABASE_PASSWORD instead of the command line.\n"
  "An existing account is refused unless --replace: then its old master key\n"
  "stops working at once.\n"
  "\nExample:\n"
  "  batchq user add alice --database-name alice_db --database-role alice \\\n"
  "    --database-port 5432 --redis.port=6379\n";

/// Letters, digits, '-', '_' and '.': what fits a URL path, a Host subdomain
/// and a Redis key pattern (no glob characters).
bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128)
    return false;
  for (unsigned char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.';
    if (!ok)
      return false;
  }
  return true;
}

void say(const char* command, const std::string& message) {
  std::cerr << "batchq user " << command << ": " << message << "\n";
}

/// A client on the metadata DB, or nullopt after printing why (exit 2).
std::optional<redis::client> metadata_client(const char* command, const redis_location& where,
                                             std::string& location) {
  config cfg;
  auto s = load_config(cfg, where.config_file, where.flags);
  if (!s) {
    say(command, message_of(s.error()));
    return std::nullopt;
  }
  location = s->redis_host + ":" + std::to_string(s->redis_port);
  return redis::client{redis::endpoint{s->redis_host, s->redis_port, redis::metadata_db}};
}

int redis_failed(const char* command, const std::string& location, const caf::error& err) {
  // An unavailable Redis' message already names its address.
  say(command, is(err, ec::redis_unavailable)
                 ? message_of(err)
                 : "Redis at " + location + " (DB 5): " + message_of(err));
  return 1;
}

int user_add(user_add_options opts) {
  if (!valid_name(opts.account.user)) {
    say("add", "bad user name '" + opts.account.user
                 + "': use letters, digits, '-', '_' and '.' only (at most 128)");
    return 2;
  }
  if (opts.port > 0)
    opts.account.database_port = static_cast<uint16_t>(opts.port);
  std::string location;
  auto rc = metadata_client("add", opts.where, location);
  if (!rc)
    return 2;
  auto existing = redis::read_user(*rc, opts.account.user);
  if (!existing)
    return redis_failed("add", location, existing.error());
  if (*existing && !opts.replace) {
    say("add", "user '" + opts.account.user
                 + "' already exists; --replace gives it a new master key (the old one stops "
                   "working)");
    return 1;
  }
  auto key = redis::add_user(*rc, opts.account);
  if (!key) {
    if (is(key.error(), ec::invalid_config)) {
      say("add", message_of(key.error()));
      return 2;
    }
    return redis_failed("add", location, key.error());
  }
  if (opts.where.json) {
    std::cout << json{{"user", opts.account.user}, {"api_key", *key}}.dump(2) << "\n";
  } else {
    std::cerr << "batchq user add: user '" << opts.account.user << "' "
              << (*existing ? "replaced" : "created")
              << "; its master API key follows (shown only now):" << std::endl;
    std::cout << *key << "\n";
  }
  return 0;
}

int user_list(const redis_location& where) {
  std::string location;
  auto rc = metadata_client("list", where, location);
  if (!rc)
    return 2;
  auto users = redis::list_users(*rc);
  if (!users)
    return redis_failed("list", location, users.error());
  if (where.json) {
    std::cout << json(*users).dump(2) << "\n";
    return 0;
  }
  for (const auto& u : *users)
    std::cout << u << "\n";
  if (users->empty())
    std::cout << "no users\n";
  return 0;
}

int user_remove(const user_name_options& opts) {
  if (!valid_name(opts.name)) {
    // Also keeps glob characters out of the api_keys:{user}:* scan.
    say("remove", "bad user name '" + opts.name
                    + "': use letters, digits, '-', '_' and '.' only (at most 128)");
    return 2;
  }
  std::string location;
  auto rc = metadata_client("remove", opts.where, location);
  if (!rc)
    return 2;
  auto removed = redis::remove_user(*rc, opts.name);
  if (!removed)
    return redis_failed("remove", location, removed.error());
  if (!*removed) {
    say("remove", "no user '" + opts.name + "'");
    return 1;
  }
  if (opts.where.json)
    std::cout << json{{"user", opts.name}, {"removed", true}}.dump(2) << "\n";
  else
    std::cout << "removed user " << opts.name << " and its API keys\n";
  return 0;
}

/// --config-file, --json and the pass-through `--section.key=value` flags.
void add_redis_location(CLI::App& app, redis_location& where, const char* json_help) {
  app.add_option("--config-file", where.config_file, "INI file (CAF format), for the Redis keys");
  app.add_flag("--json", where.json, json_help);
  app.allow_extras();
  app.footer(user_footer);
}

} // namespace

command add_user(CLI::App& program) {
  auto* app = program.add_subcommand("user", "manage accounts and API keys (in Redis)");
  app->require_subcommand(1);
  app->footer(user_footer);

  auto add = std::make_shared<user_add_options>();
  auto* add_app = app->add_subcommand("add", "create an account with a new master API key");
  add_app->add_option("NAME", add->account.user, "the user name")->required();
  add_app->add_option("--database-name", add->account.database_name,
                      "the PostgreSQL database the user's jobs run in")
    ->required();
  add_app->add_option("--database-role", add->account.database_role,
                      "the PostgreSQL role the jobs run as")
    ->required();
  add_app->add_option("--database-password", add->account.database_password,
                      "the role's password (default: none)")
    ->envname("BATCHQ_DATABASE_PASSWORD");
  add_app->add_option("--database-host", add->account.database_host,
                      "the PostgreSQL host (default 127.0.0.1)");
  add_app->add_option("--database-port", add->port,
                      "the PostgreSQL port (default: the node's postgres.port)")
    ->check(CLI::Range(1, 65535));
  add_app->add_flag("--replace", add->replace,
                    "replace an existing account (its old master key stops working)");
  add_redis_location(*add_app, add->where, "print {\"user\": ..., \"api_key\": ...}");
  add_app->footer(std::string{user_add_footer} + user_footer);

  auto list = std::make_shared<redis_location>();
  auto* list_app = app->add_subcommand("list", "print the user names, sorted");
  add_redis_location(*list_app, *list, "print a JSON array of the names");

  auto remove = std::make_shared<user_name_options>();
  auto* remove_app = app->add_subcommand("remove", "delete an account and all its API keys");
  remove_app->add_option("NAME", remove->name, "the user name")->required();
  add_redis_location(*remove_app, remove->where, "print {\"user\": ..., \"removed\": true}");

  return command{app, [=] {
                   if (add_app->parsed()) {
                     add->where.flags = add_app->remaining();
                     return user_add(*add);
                   }
                   if (list_app->parsed()) {
                     list->flags = list_app->remaining();
                     return user_list(*list);
                   }
                   remove->where.flags = remove_app->remaining();
                   return user_remove(*remove);
                 }};
}

} // namespace batchq::cli
