// `batchq serve`: configuration, actor system, node, signal loop, drain.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "cluster/node.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/options.hpp"
#include "src/cli/signals.hpp"
#include "src/log/log.hpp"

namespace batchq::cli {

namespace {

std::string render(caf::actor_system& sys, const caf::error& err) {
  auto m = message_of(err);
  return m.empty() ? sys.render(err) : m;
}

} // namespace

int serve(const serve_options& opts) {
  config cfg;
  register_types(cfg);
  cfg.load<caf::io::middleman>();
  auto s = load_config(cfg, opts.config_file, opts.flags);
  if (!s) {
    std::cerr << "batchq serve: " << message_of(s.error()) << "\n";
    return 2;
  }
  cfg.set("middleman.app-identifiers", std::vector<std::string>{protocol_id});
  log::configure(s->log_format == "json", log::parse_level(s->log_level), s->cluster_node_id);

  signal_watcher signals;
  if (!signals.install()) {
    std::cerr << "batchq serve: cannot install signal handlers\n";
    return 1;
  }

  caf::actor_system sys{cfg};
  cluster::node n{sys, *s};
  if (auto err = n.start()) {
    log::error("node start failed", {{"error", render(sys, err)}});
    n.stop();
    return 1;
  }
  log::info("node started",
            {{"redis", s->redis_host + ":" + std::to_string(s->redis_port) + "/"
                         + std::to_string(s->redis_db)},
             {"cluster_port", std::to_string(n.cluster_port())},
             {"mode", opts.worker_only ? "worker-only" : "worker (no HTTP API yet)"},
             {"version", cluster::version()}});

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
                              {"shutdown_grace_s", std::to_string(s->batch_shutdown_grace)}});
  int rc = 0;
  auto report = n.drain();
  if (report) {
    log::info("node drained", {{"finished", std::to_string(report->finished)},
                                 {"requeued", std::to_string(report->requeued)}});
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

} // namespace batchq::cli
