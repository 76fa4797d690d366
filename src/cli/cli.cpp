#include "src/cli/cli.hpp"

#include <algorithm>
#include <iostream>

#include <CLI/CLI.hpp>

#include "src/cli/command.hpp"

namespace batchq::cli {

int run(int argc, char** argv) {
  CLI::App app{"batchq runs long SQL batch jobs for many users against PostgreSQL; jobs wait\n"
               "in per-user queues in Redis (CARTO Batch Queries compatible).",
               "batchq"};
  app.require_subcommand(1);
  app.footer("\nRun `batchq <command> --help` for a command's options.");

  // Every command of the program, in the order `batchq --help` lists them.
  std::vector<command> commands{
    add_serve(app),
    add_dev(app),
    add_submit(app),
    add_get(app),
    add_results(app),
    add_cancel(app),
    add_list(app),
    add_watch(app),
    add_wip(app),
    add_user(app),
  };

  // An unknown command word gets a clear message rather than CLI11's
  // "A subcommand is required".
  if (argc >= 2) {
    std::string first = argv[1];
    auto known = std::any_of(commands.begin(), commands.end(),
                             [&](const command& c) { return c.app->get_name() == first; });
    if (!first.empty() && first[0] != '-' && !known) {
      std::string names;
      for (const auto& c : commands)
        names += (names.empty() ? "" : ", ") + c.app->get_name();
      std::cerr << "batchq: unknown command '" << first << "' (commands: " << names
                << "); see `batchq --help`\n";
      return 2;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "batchq: " << e.what() << "; see `batchq --help`\n";
    return 2;
  }
  for (auto& c : commands)
    if (c.app->parsed())
      return c.run();
  return 2; // unreachable: require_subcommand(1)
}

} // namespace batchq::cli
