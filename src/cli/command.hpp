// How a `batchq` command plugs into the program (SPEC §9): each command lives in
// its own file, adds a CLI11 subcommand to the program's app and returns what
// runs it once the command line was parsed. cli.cpp lists the commands.
//
// Exit codes, for every command: 0 success; 1 the command ran and failed (the
// job cannot be cancelled, the server answered an error, the node could not
// start); 2 bad usage or bad configuration.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

namespace batchq::cli {

struct command {
  /// The subcommand inside the program's app (owned by the app).
  CLI::App* app = nullptr;
  /// Runs the command after a successful parse; returns the exit code.
  std::function<int()> run;
};

/// `batchq serve` (serve.cpp).
command add_serve(CLI::App& program);
/// `batchq submit` (submit.cpp).
command add_submit(CLI::App& program);
/// `batchq results` (results.cpp).
command add_results(CLI::App& program);
/// `batchq get` (get.cpp).
command add_get(CLI::App& program);
/// `batchq cancel`: through the API, or `--direct` through Redis (cancel.cpp).
command add_cancel(CLI::App& program);
/// `batchq dev` (dev.cpp).
command add_dev(CLI::App& program);
/// `batchq list` (list.cpp).
command add_list(CLI::App& program);
/// `batchq watch` (watch.cpp).
command add_watch(CLI::App& program);
/// `batchq wip` (wip.cpp).
command add_wip(CLI::App& program);
/// `batchq user add|list|remove` (user.cpp).
command add_user(CLI::App& program);

} // namespace batchq::cli
