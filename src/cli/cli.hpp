// The `batchq` program's command line (SPEC §9): `batchq serve` and
// `batchq cancel <job_id>`, parsed with CLI11. Configuration flags
// (`--section.key=value`) are not CLI11 options: they pass through to
// batchq::config (CAF's parser), see options.hpp.
//
// Exit codes: 0 success; 1 the command ran and failed (e.g. the job cannot be
// cancelled, the node could not start); 2 bad usage or bad configuration.
//
// Called once from main(); not reentrant (serve installs signal handlers).
#pragma once

#include <string>
#include <vector>

namespace batchq::cli {

/// What `batchq serve` was asked to do.
struct serve_options {
  bool worker_only = false;
  bool api_only = false;
  std::string config_file;
  /// `--section.key=value` words, in order.
  std::vector<std::string> flags;
};

/// What `batchq cancel` was asked to do.
struct cancel_options {
  std::string job_id;
  std::string config_file;
  std::vector<std::string> flags;
};

/// Parses argv and runs the command; returns the process exit code.
int run(int argc, char** argv);

/// `batchq serve` (serve.cpp): runs a node until SIGTERM/SIGINT, then drains.
int serve(const serve_options& opts);

/// `batchq cancel <job_id>` (cancel.cpp): prints the job's status after the
/// cancel (`cancelled`) or why it could not be cancelled.
int cancel(const cancel_options& opts);

} // namespace batchq::cli
