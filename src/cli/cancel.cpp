// `batchq cancel <job_id>`: the job's owner from Redis, then the canceller of
// a small actor system (cluster::cancel_front) does what a node's canceller
// does. Prints the resulting status, or why it cannot be cancelled.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "cluster/node.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "src/cli/command.hpp"
#include "src/cli/options.hpp"
#include "src/cli/signals.hpp"
#include "src/log/log.hpp"
#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"

namespace batchq::cli {

namespace {

struct cancel_options {
  std::string job_id;
  std::string config_file;
  std::vector<std::string> flags;
};

std::string cancel_footer() {
  return "\nCancels job JOB_ID wherever it is: a pending job becomes `cancelled` in Redis;\n"
         "a running job's statement is stopped on the node that runs it (over the\n"
         "cluster link, else with pg_cancel_backend). Prints the resulting status\n"
         "(`cancelled`) or why it cannot be cancelled (`Cannot set status from done to\n"
         "cancelled`, `Job with id X not found`). Exit status 0 when cancelled, else 1.\n"
         "\nThe Redis keys (and any other key) may be given as flags, as for `serve`:\n"
         "  --config-file=PATH  --redis.host=HOST  --redis.port=PORT  --redis.db=N\n";
}

int cancel(const cancel_options& opts) {
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
    if (res) {
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
  app->add_option("job_id", opts->job_id, "the job's id")->required();
  app->add_option("--config-file", opts->config_file, "INI file (CAF format), for the Redis keys");
  app->allow_extras();
  app->footer(cancel_footer());
  return command{app, [opts, app] {
                   opts->flags = app->remaining();
                   return cancel(*opts);
                 }};
}

} // namespace batchq::cli
