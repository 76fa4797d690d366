// Running a node in the foreground until SIGTERM/SIGINT, then draining it
// (SPEC §7, §9). Shared by `batchq serve` and `batchq dev`.
//
// Not reentrant: installs signal handlers for the process.
#pragma once

#include <cstdint>
#include <functional>

#include "cluster/node.hpp"
#include "src/config/settings.hpp"

namespace batchq::cli {

/// Which parts of a node run (SPEC §9 `--api-only` / `--worker-only`); lives
/// in cluster/node.hpp, named here for the commands.
using cluster::node_mode;
using cluster::to_string;

/// Where a started node can be reached.
struct node_endpoints {
  /// The port the HTTP server listens on (http.port, or the one picked when
  /// http.port=0). Every mode has one (--worker-only: probes only).
  uint16_t http_port = 0;
  /// The middleman port of the node's canceller.
  uint16_t cluster_port = 0;
};

/// Runs a node in `mode` with `cfg`/`s` (REQUIRES: s == cfg.validate(), log
/// already configured) until SIGTERM or SIGINT, then drains and stops it.
/// `on_started` (optional) runs once the node serves, on the calling thread;
/// signals that arrive while it runs are not lost. `command` names the caller
/// in error messages ("batchq serve"). Returns the exit code: 0 after a clean
/// drain, 1 when the node cannot start or the drain fails.
int run_node(const char* command, config& cfg, const settings& s, node_mode mode,
             const std::function<void(const node_endpoints&)>& on_started = {});

} // namespace batchq::cli
