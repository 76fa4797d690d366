// `batchq dev` (SPEC §9, docs/dev-mode.md): a single node with everything it
// needs on this machine. In order:
//   1. configuration (flags and --config-file, as for `serve`); the HTTP port
//      must be free (else exit 1 naming --http.port);
//   2. redis-server (unless --redis.host/--redis.port name one), initdb and
//      postgres are found (else exit 1 with the apt-get line);
//   3. a private directory /tmp/batchq-dev.XXXXXX; an embedded Redis and a
//      PostgreSQL cluster in it on free loopback ports (src/dev/);
//   4. the demo role + database, and user `demo` with a random master key;
//   5. a full node (run_node), and on stdout a banner with a runnable curl line;
//   6. on SIGINT/SIGTERM: the node drains, the servers stop, the directory
//      and (with an external Redis) the demo user are removed; exit 0.
//
// Signals: SIGINT and SIGTERM stay blocked from the start until the node
// serves (on_started), so a Ctrl-C during start-up is never lost and never
// kills batchq half-way: start-up polls for it (sigtimedwait) and cleans up;
// afterwards run_node's own handlers take over. Blocked again after run_node
// returns, so a second Ctrl-C cannot interrupt the clean-up.
#include <csignal>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <caf/settings.hpp>

#include <pthread.h>
#include <unistd.h>

#include "messages/error.hpp"
#include "src/cli/command.hpp"
#include "src/cli/options.hpp"
#include "src/cli/serve.hpp"
#include "src/dev/binaries.hpp"
#include "src/dev/net.hpp"
#include "src/dev/process.hpp"
#include "src/dev/provision.hpp"
#include "src/dev/services.hpp"
#include "src/log/log.hpp"
#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/users.hpp"

namespace batchq::cli {

namespace {

constexpr const char* who = "batchq dev";

struct dev_options {
  std::string config_file;
  bool keep = false;
};

std::string dev_footer() {
  return "\nStarts a single batchq node (HTTP API + worker) with everything it needs on\n"
         "this machine: its own redis-server and a private PostgreSQL cluster (initdb\n"
         "into /tmp/batchq-dev.XXXXXX) on free loopback ports, a demo database\n"
         "`batchq_demo`, user `demo` and a master API key. It prints a curl line that\n"
         "submits a job, and the lines to read and cancel it. Ctrl-C drains the node,\n"
         "stops both servers and removes the directory (keep it with --keep).\n"
         "\nAs root, PostgreSQL runs as the OS user `postgres` (else `nobody`).\n"
         "Binaries: redis-server from PATH or $BATCHQ_REDIS_SERVER; initdb and\n"
         "postgres from /usr/lib/postgresql/<highest version>/bin or $BATCHQ_PG_BINDIR.\n"
         "\nThe API listens on 127.0.0.1:8080; when that port is taken, pass\n"
         "--http.port=N. Give --redis.host/--redis.port to use an existing Redis\n"
         "instead of an embedded one: user `demo` is then written into its metadata\n"
         "DB 5 (replacing one of that name) and removed on exit, and this node runs\n"
         "every job queued in --redis.db.\n"
         "\nExit status: 0 after Ctrl-C (or SIGTERM) and a clean stop; 1 when something\n"
         "cannot start (the message says what to do); 2 bad usage or configuration.\n"
         "\nConfiguration flags are those of `batchq serve` (--section.key=VALUE):\n"
         + config_keys_help();
}

/// `'text'` for a POSIX shell, whatever `text` holds.
std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

/// Whether the user named a Redis: a --redis.host/--redis.port flag or either
/// key in the configuration file (CAF keeps parsed keys in `content`).
bool redis_given(const std::vector<std::string>& flags, const config& cfg) {
  for (const auto& f : flags)
    for (const char* key : {"--redis.host", "--redis.port"}) {
      auto n = std::char_traits<char>::length(key);
      if (f.compare(0, n, key) == 0 && (f.size() == n || f[n] == '='))
        return true;
    }
  const auto& content = caf::content(cfg);
  return caf::get_if(&content, "redis.host") != nullptr
         || caf::get_if(&content, "redis.port") != nullptr;
}

/// SIGINT + SIGTERM.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

/// True (once and for good) when SIGINT/SIGTERM arrived while blocked.
struct interrupt_poll {
  bool seen = false;
  bool operator()() {
    if (seen)
      return true;
    auto set = stop_signals();
    timespec zero{0, 0};
    seen = ::sigtimedwait(&set, nullptr, &zero) > 0;
    return seen;
  }
};

/// The host part of the URL the banner prints.
std::string url_host(const std::string& bind) {
  if (bind.empty() || bind == "0.0.0.0" || bind == "::" || bind == "[::]")
    return "127.0.0.1";
  if (bind.find(':') != std::string::npos && bind.front() != '[')
    return "[" + bind + "]";
  return bind;
}

std::string self_path() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0)
    return "batchq";
  return std::string{buf, static_cast<size_t>(n)};
}

/// What the banner shows.
struct banner_facts {
  std::string base_url;        // http://127.0.0.1:8080
  std::string user;
  std::string key;
  std::string redis;           // "127.0.0.1:6400, DB 5 (embedded)"
  uint16_t pg_port = 0;
  std::string pg_socket_dir;
  dev::demo_account account;
  std::string dir;
  bool keep = false;
};

std::string banner(const banner_facts& f) {
  auto auth = shell_quote("Authorization: Bearer " + f.key);
  auto jobs = f.base_url + "/user/" + f.user + "/api/v2/sql/job";
  std::ostringstream out;
  out << "\n"
      << "batchq dev is ready.\n"
      << "  API         " << f.base_url << "  (user " << f.user << ", master API key " << f.key
      << ")\n"
      << "  Redis       " << f.redis << "\n"
      << "  PostgreSQL  127.0.0.1:" << f.pg_port << ", database " << f.account.database
      << ", role " << f.account.role << " (embedded)\n"
      << "  Files       " << f.dir << (f.keep ? " (kept on exit: --keep)" : "") << "\n"
      << "\n"
      << "Submit a job (the answer carries its job_id):\n"
      << "curl -sS -X POST -H " << auth << " -H 'Content-Type: application/json' -d "
      << shell_quote(R"js({"query": "SELECT pg_sleep(1)"})js") << " " << jobs << "\n"
      << "\n"
      << "Read it (replace JOB_ID; ?wait=10 answers as soon as the job is final, or after 10 s):\n"
      << "curl -sS -H " << auth << " " << shell_quote(jobs + "/JOB_ID?wait=10") << "\n"
      << "\n"
      << "Cancel it:\n"
      << "curl -sS -X DELETE -H " << auth << " " << jobs << "/JOB_ID\n"
      << "\n"
      << "Or with the batchq client:\n"
      << "export BATCHQ_URL=" << f.base_url << " BATCHQ_USER=" << f.user
      << " BATCHQ_API_KEY=" << shell_quote(f.key) << "\n"
      << shell_quote(self_path()) << " submit 'SELECT pg_sleep(1)' --wait\n"
      << "\n"
      << "Look into the demo database:\n"
      << "psql -h " << shell_quote(f.pg_socket_dir) << " -p " << f.pg_port << " -U "
      << f.account.role << " " << f.account.database << "\n"
      << "\n"
      << "Press Ctrl-C to stop; everything is removed"
      << (f.keep ? " except " + f.dir : std::string{}) << ".\n";
  return out.str();
}

int dev(const dev_options& opts, const std::vector<std::string>& flags) {
  // 1. Configuration, as `serve` reads it (a probe: the node's own config
  //    object is built later, with the embedded Redis' port).
  config probe;
  auto s0 = load_config(probe, opts.config_file, flags);
  if (!s0) {
    std::cerr << who << ": " << message_of(s0.error()) << "\n";
    return 2;
  }
  log::configure(s0->log_format == "json", log::parse_level(s0->log_level), s0->cluster_node_id);
  const bool external_redis = redis_given(flags, probe);

  if (!dev::can_listen(s0->http_bind, s0->http_port)) {
    std::cerr << who << ": cannot listen on " << s0->http_bind << ":" << s0->http_port
              << " for the HTTP API (the port is taken); pass --http.port=N with a free port\n";
    return 1;
  }

  // 2. The programs.
  std::optional<std::string> redis_bin;
  bool missing = false;
  if (!external_redis) {
    auto r = dev::find_redis_server();
    if (r)
      redis_bin = *r;
    else {
      std::cerr << who << ": " << message_of(r.error()) << "\n";
      missing = true;
    }
  }
  auto pg_bin = dev::find_postgres();
  if (!pg_bin) {
    std::cerr << who << ": " << message_of(pg_bin.error()) << "\n";
    missing = true;
  }
  auto run_as = dev::unprivileged_user();
  if (!run_as) {
    std::cerr << who << ": " << message_of(run_as.error()) << "\n";
    missing = true;
  }
  if (missing)
    return 1;

  // 3. From here on a Ctrl-C must not kill us half-way (see the top).
  auto stop_set = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  interrupt_poll interrupted;
  auto interrupted_fn = [&] { return interrupted(); };
  auto fail = [&](const std::string& what) {
    if (interrupted.seen) {
      std::cerr << who << ": interrupted while starting; everything started was removed\n";
      return 1;
    }
    std::cerr << who << ": " << what << "\n";
    return 1;
  };

  // Destroyed in reverse order: the servers stop before the directory goes.
  dev::temp_dir dir;
  if (auto err = dir.create(*run_as))
    return fail(message_of(err));
  if (opts.keep)
    dir.keep();
  log::info("dev directory created", {{"dir", dir.path()}});

  dev::service_timeouts timeouts;
  dev::embedded_redis redis;
  std::string redis_host = s0->redis_host;
  uint16_t redis_port = s0->redis_port;
  if (!external_redis) {
    if (auto err = redis.start(*redis_bin, dir.path(), timeouts, interrupted_fn))
      return fail(message_of(err));
    redis_host = "127.0.0.1";
    redis_port = redis.port();
    log::info("redis started", {{"pid", std::to_string(redis.pid())},
                                {"port", std::to_string(redis_port)},
                                {"binary", *redis_bin}});
  }

  dev::embedded_postgres pg;
  if (auto err = pg.start(*pg_bin, dir.path(), *run_as, timeouts, interrupted_fn))
    return fail(message_of(err));
  log::info("postgres started",
            {{"pid", std::to_string(pg.pid())},
             {"port", std::to_string(pg.port())},
             {"bindir", pg_bin->bindir},
             {"os_user", *run_as ? (*run_as)->name : std::string{"(this user)"}}});

  // 4. The demo account.
  dev::demo_account account;
  account.password = redis::random_token();
  if (auto err = dev::create_demo_database({pg.socket_dir(), pg.port(), pg.superuser}, account))
    return fail(message_of(err));
  redis::client metadata{redis::endpoint{redis_host, redis_port, redis::metadata_db}};
  if (external_redis) {
    auto existing = redis::read_user(metadata, account.user);
    if (existing && *existing)
      log::warning("replacing user", {{"user", account.user},
                                      {"reason", "batchq dev writes its demo user"}});
  }
  auto key = dev::add_demo_user(metadata, account, pg.port());
  if (!key)
    return fail("cannot write user " + account.user + " into Redis at " + redis_host + ":"
                + std::to_string(redis_port) + ": " + message_of(key.error()));
  // An external Redis is not ours to throw away: the demo user (pointing at
  // a database that is about to vanish) leaves with us, whatever the exit.
  struct user_remover {
    redis::client* metadata = nullptr;
    std::string user;
    ~user_remover() {
      if (metadata == nullptr)
        return;
      auto removed = redis::remove_user(*metadata, user);
      if (!removed)
        log::warning("demo user not removed", {{"user", user},
                                               {"error", message_of(removed.error())}});
    }
  } remove_demo_user{external_redis ? &metadata : nullptr, account.user};
  log::info("demo user created", {{"user", account.user},
                                  {"database", account.database},
                                  {"role", account.role}});
  if (interrupted())
    return fail("");

  // 5. The node, with the Redis it must use (flags given later win).
  std::vector<std::string> node_flags = flags;
  if (!external_redis) {
    node_flags.push_back("--redis.host=127.0.0.1");
    node_flags.push_back("--redis.port=" + std::to_string(redis_port));
  }
  config cfg;
  auto s = load_node_config(cfg, opts.config_file, node_flags);
  if (!s) {
    std::cerr << who << ": " << message_of(s.error()) << "\n";
    return 2;
  }

  banner_facts facts;
  facts.user = account.user;
  facts.key = *key;
  facts.redis = redis_host + ":" + std::to_string(redis_port) + ", DB "
                + std::to_string(s->redis_db)
                + (external_redis ? " (yours, not embedded)" : " (embedded)");
  facts.pg_port = pg.port();
  facts.pg_socket_dir = pg.socket_dir();
  facts.account = account;
  facts.dir = dir.path();
  facts.keep = opts.keep;
  auto rc = run_node(who, cfg, *s, node_mode::full, [&](const node_endpoints& ep) {
    auto port = ep.http_port != 0 ? ep.http_port : s->http_port;
    facts.base_url = "http://" + url_host(s->http_bind) + ":" + std::to_string(port);
    std::cout << banner(facts) << std::flush;
    // run_node's handlers are in place: let SIGINT/SIGTERM (also one that
    // arrived while starting, pending until now) reach them.
    ::pthread_sigmask(SIG_UNBLOCK, &stop_set, nullptr);
  });
  ::pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);

  // 6. Clean up: the servers after the node (its drain needs them), then the
  //    directory (the demo user of an external Redis: remove_demo_user).
  for (auto line : {pg.stop(), redis.stop()})
    if (!line.empty())
      log::info("dev server stopped", {{"server", line}});
  if (auto problem = dir.remove(); !problem.empty()) {
    log::warning("dev directory not removed", {{"error", problem}});
  } else if (opts.keep) {
    log::info("dev directory kept", {{"dir", facts.dir}});
  } else {
    log::info("dev directory removed", {{"dir", facts.dir}});
  }
  return rc;
}

} // namespace

command add_dev(CLI::App& program) {
  auto opts = std::make_shared<dev_options>();
  auto* app = program.add_subcommand(
    "dev", "run a single node with its own Redis and PostgreSQL, for trying batchq out");
  app->add_option("--config-file", opts->config_file,
                  "INI file (CAF format) with any of the keys below");
  app->add_flag("--keep", opts->keep,
                "keep the temporary directory (server logs, data) on exit, for inspection");
  app->allow_extras();
  app->footer(dev_footer());
  return command{app, [opts, app] { return dev(*opts, app->remaining()); }};
}

} // namespace batchq::cli
