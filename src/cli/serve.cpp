// `batchq serve`: configuration, actor system, node, signal loop, drain.
#include "src/cli/serve.hpp"

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>

#include "cluster/node.hpp"
#include "messages/error.hpp"
#include "src/cli/command.hpp"
#include "src/cli/options.hpp"
#include "src/cli/signals.hpp"
#include "src/log/log.hpp"

namespace batchq::cli {

namespace {

std::string render(caf::actor_system& sys, const caf::error& err) {
  auto m = message_of(err);
  return m.empty() ? sys.render(err) : m;
}

struct serve_options {
  bool worker_only = false;
  bool api_only = false;
  std::string config_file;
};

std::string serve_footer() {
  return "\nA node serves the HTTP job API on http.bind:http.port (POST/GET/DELETE\n"
         "/api/v2/sql/job, see docs/http-api.md) and runs the jobs users queue in Redis:\n"
         "each user's jobs one at a time, in order, different users in parallel.\n"
         "--api-only: the API without a worker (its jobs run on worker nodes of the same\n"
         "Redis). --worker-only: the worker, with only /health, /ready and /metrics on\n"
         "the HTTP port. http.port=0 picks a free port (logged as `http listening`).\n"
         "SIGTERM/SIGINT drains the node: running jobs get batch.shutdown-grace seconds,\n"
         "then go back to pending at the head of their queue; exit status 0.\n"
         "\nConfiguration (precedence: default < --config-file < flag); every key is in\n"
         "cluster/batchq.example.ini. Flags take the form --section.key=VALUE:\n"
         + config_keys_help();
}

int serve(const serve_options& opts, const std::vector<std::string>& flags) {
  if (opts.api_only && opts.worker_only) {
    std::cerr << "batchq serve: --api-only and --worker-only exclude each other\n";
    return 2;
  }
  config cfg;
  auto s = load_node_config(cfg, opts.config_file, flags);
  if (!s) {
    std::cerr << "batchq serve: " << message_of(s.error()) << "\n";
    return 2;
  }
  log::configure(s->log_format == "json", log::parse_level(s->log_level), s->cluster_node_id);
  auto mode = opts.worker_only ? node_mode::worker_only
              : opts.api_only  ? node_mode::api_only
                               : node_mode::full;
  return run_node("batchq serve", cfg, *s, mode);
}

} // namespace

int run_node(const char* command, config& cfg, const settings& s, node_mode mode,
             const std::function<void(const node_endpoints&)>& on_started) {
  signal_watcher signals;
  if (!signals.install()) {
    std::cerr << command << ": cannot install signal handlers\n";
    return 1;
  }

  caf::actor_system sys{cfg};
  cluster::node n{sys, s, mode};
  if (auto err = n.start()) {
    log::error("node start failed", {{"error", render(sys, err)}});
    n.stop();
    return 1;
  }
  log::info("node started",
            {{"redis", s.redis_host + ":" + std::to_string(s.redis_port) + "/"
                         + std::to_string(s.redis_db)},
             {"cluster_port", std::to_string(n.cluster_port())},
             {"http_port", std::to_string(n.http_port())},
             {"mode", to_string(mode)},
             {"version", cluster::version()}});
  if (on_started)
    on_started(node_endpoints{n.http_port(), n.cluster_port()});

  int sig = 0;
  for (;;) {
    if (auto got = signals.wait(cluster::heartbeat_period)) {
      sig = *got;
      break;
    }
    if (auto err = n.heartbeat())
      log::warning("node heartbeat failed", {{"error", render(sys, err)}});
  }

  log::info("shutdown requested", {{"signal", std::string{sig == SIGINT ? "SIGINT" : "SIGTERM"}},
                                   {"shutdown_grace_s", std::to_string(s.batch_shutdown_grace)}});
  int rc = 0;
  auto report = n.drain();
  if (report && report->unsettled == 0) {
    log::info("node drained", {{"finished", std::to_string(report->finished)},
                               {"requeued", std::to_string(report->requeued)}});
  } else if (report) {
    log::error("drain failed: jobs could not be written back (is Redis reachable?)",
               {{"finished", std::to_string(report->finished)},
                {"requeued", std::to_string(report->requeued)},
                {"unsettled", std::to_string(report->unsettled)}});
    rc = 1;
  } else {
    log::error("drain failed", {{"error", render(sys, report.error())}});
    rc = 1;
  }
  n.stop();
  log::info("node stopped", {{"exit_code", std::to_string(rc)}});
  if (rc != 0) {
    // Runners may still block in statements, and ~actor_system would wait for
    // them: leave now. Their leases expire and another node's orphan sweep
    // takes over, cancelling any backend still running the job (SPEC §7, the
    // crash path).
    std::_Exit(rc);
  }
  return rc;
}

command add_serve(CLI::App& program) {
  auto opts = std::make_shared<serve_options>();
  auto* app = program.add_subcommand("serve", "run a node: the HTTP job API and a worker");
  app->add_flag("--worker-only", opts->worker_only,
                "run the worker only (HTTP: /health, /ready, /metrics)");
  app->add_flag("--api-only", opts->api_only, "run the HTTP API only (no worker)");
  app->add_option("--config-file", opts->config_file,
                  "INI file (CAF format) with any of the keys below");
  app->allow_extras();
  app->footer(serve_footer());
  return command{app, [opts, app] { return serve(*opts, app->remaining()); }};
}

} // namespace batchq::cli
