// `batchq cancel <job_id>`: two ways to cancel a job (docs/cli.md).
//  - the client command (default): DELETE /user/{user}/api/v2/sql/job/{id}
//    through the HTTP API (SPEC §8), with --user and --api-key like the other
//    client commands;
//  - `--direct`, for operators: no key, straight to Redis and the cluster. The
//    job's owner is read from Redis, then the canceller of a small actor system
//    (cluster::cancel_front) does what a node's canceller does. Prints the
//    resulting status, or why it cannot be cancelled.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "cluster/node.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "src/cli/client.hpp"
#include "src/cli/command.hpp"
#include "src/cli/format.hpp"
#include "src/cli/options.hpp"
#include "src/cli/signals.hpp"
#include "src/log/log.hpp"
#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"

namespace batchq::cli {

namespace {

struct cancel_options {
  client_options client;
  std::string job_id;
  bool direct = false;
  std::string config_file;
  std::vector<std::string> flags;
};

std::string cancel_footer() {
  return "\nCancels job JOB_ID wherever it runs: a pending job becomes `cancelled` and\n"
         "leaves its queue; a running job's statement is stopped on the node that runs\n"
         "it. Prints `<job_id> cancelled` (--json: the server's job), or why it cannot\n"
         "be cancelled on stderr (`Cannot set status from done to cancelled`, `Job with\n"
         "id X not found`).\n"
         "\nOperators: `batchq cancel --direct JOB_ID` needs no user or key; it reads\n"
         "the job in Redis and cancels it through the cluster link (else with\n"
         "pg_cancel_backend), and prints the resulting status or the reason on stdout.\n"
         "The Redis keys (and any other key) may then be given as flags, as for `serve`:\n"
         "  --config-file=PATH  --redis.host=HOST  --redis.port=PORT  --redis.db=N\n"
         "\nExit status: 0 cancelled; 1 not cancelled (final or unknown job, refused,\n"
         "unreachable); 2 bad usage.\n";
}

int cancel_http(const cancel_options& opts) {
  if (!opts.config_file.empty() || !opts.flags.empty()) {
    std::cerr << "batchq cancel: "
              << (opts.flags.empty() ? "--config-file" : "'" + opts.flags.front() + "'")
              << " only goes with --direct (see --help)\n";
    return 2;
  }
  auto api = api_client::make("cancel", opts.client);
  if (!api)
    return 2;
  auto r = api->del(api->job_path(opts.job_id));
  if (!r)
    return 1;
  auto status = to_view(r->body).status;
  if (opts.client.json)
    print_json(r->raw);
  else
    std::cout << opts.job_id << " " << (status.empty() ? "?" : status) << "\n";
  return status == "cancelled" ? 0 : 1;
}

int cancel_direct(const cancel_options& opts) {
  config cfg;
  auto s = load_node_config(cfg, opts.config_file, opts.flags);
  if (!s) {
    std::cerr << "batchq cancel: " << message_of(s.error()) << "\n";
    return 2;
  }
  // Quiet by default: stdout carries the answer, stderr only problems.
  auto lvl = log::parse_level(s->log_level);
  if (lvl < log::level::warning)
    lvl = log::level::warning;
  auto front_id = "cli-" + std::to_string(::getpid());
  log::configure(s->log_format == "json", lvl, front_id);
  ignore_sigpipe(); // libpq's cancel (the pg_cancel_backend fallback) uses send()

  // Whose job is it? (The canceller needs the user; a CLI caller is trusted.)
  redis::client rc{redis::endpoint{s->redis_host, s->redis_port, s->redis_db}};
  auto rec = redis::read_job(rc, opts.job_id);
  if (!rec) {
    std::cerr << "batchq cancel: Redis at " << s->redis_host << ":" << s->redis_port
              << " cannot be read: " << message_of(rec.error()) << "\n";
    return 1;
  }
  if (!*rec || (*rec)->count("user") == 0) {
    std::cout << "Job with id " << opts.job_id << " not found\n";
    return 1;
  }
  auto user = (*rec)->at("user");

  caf::actor_system sys{cfg};
  int code = 1;
  {
    cluster::cancel_front front{sys, *s, front_id};
    auto res = front.cancel(opts.job_id, user, std::chrono::seconds{30});
    if (res && res->status == "running") {
      // The pg_cancel_backend fallback signalled the statement, but the
      // job's node did not record the cancel in time (it may be gone).
      std::cout << "running: the cancel is not recorded yet (the job's node did not answer; "
                   "the job ends cancelled once a node records it)\n";
    } else if (res) {
      std::cout << res->status << "\n";
      code = res->status == "cancelled" ? 0 : 1;
    } else {
      auto m = message_of(res.error());
      std::cout << (m.empty() ? sys.render(res.error()) : m) << "\n";
    }
  }
  return code;
}

} // namespace

command add_cancel(CLI::App& program) {
  auto opts = std::make_shared<cancel_options>();
  auto* app = program.add_subcommand("cancel", "cancel a job by id (pending or running)");
  app->add_option("JOB_ID", opts->job_id, "the job's id")->required();
  add_client_options(*app, opts->client);
  const char* direct = "Operators (--direct: Redis and the cluster, no key)";
  app->add_flag("--direct", opts->direct,
                "cancel through Redis and the cluster link instead of the HTTP API")
    ->group(direct);
  app->add_option("--config-file", opts->config_file,
                  "INI file (CAF format), for the Redis keys (with --direct)")
    ->group(direct);
  app->allow_extras();
  app->footer(cancel_footer());
  return command{app, [opts, app] {
                   opts->flags = app->remaining();
                   return opts->direct ? cancel_direct(*opts) : cancel_http(*opts);
                 }};
}

} // namespace batchq::cli
