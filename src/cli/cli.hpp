// The `batchq` program's command line (SPEC §9), parsed with CLI11. Each
// command lives in its own file (command.hpp lists them). Configuration flags
// (`--section.key=value`) are not CLI11 options: they pass through to
// batchq::config (CAF's parser), see options.hpp.
//
// Exit codes: 0 success; 1 the command ran and failed (e.g. the job cannot be
// cancelled, the node could not start); 2 bad usage or bad configuration.
//
// Called once from main(); not reentrant (serve installs signal handlers).
#pragma once

namespace batchq::cli {

/// Parses argv and runs the command; returns the process exit code.
int run(int argc, char** argv);

} // namespace batchq::cli
