// `batchq wip`: GET /user/{user}/api/v1/jobs-wip (SPEC §8), the ids of the
// user's jobs in progress. docs/cli.md.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"

namespace batchq::cli {

namespace {

const char* wip_footer =
  "\nPrints the ids of the user's jobs that a worker is running now, one per line\n"
  "(`no jobs in progress` when there is none); --json prints the server's\n"
  "{\"<user>\": [ids]} as is.\n"
  "\nExit status: 0 shown; 1 refused or unreachable; 2 bad usage.\n";

int wip(const client_options& opts) {
  auto api = api_client::make("wip", opts);
  if (!api)
    return 2;
  auto r = api->get(api->wip_path());
  if (!r)
    return 1;
  if (opts.json) {
    print_json(r->raw);
    return 0;
  }
  auto ids = r->body.is_object() ? r->body.find(opts.user) : r->body.end();
  if (ids == r->body.end() || !ids->is_array()) {
    api->fail("the server's answer has no list for user '" + opts.user + "'");
    return 1;
  }
  size_t shown = 0;
  for (const auto& id : *ids)
    if (id.is_string()) {
      std::cout << id.get<std::string>() << "\n";
      ++shown;
    }
  if (shown == 0)
    std::cout << "no jobs in progress\n";
  return 0;
}

} // namespace

command add_wip(CLI::App& program) {
  auto opts = std::make_shared<client_options>();
  auto* app = program.add_subcommand("wip", "list the ids of the jobs in progress");
  add_client_options(*app, *opts);
  app->footer(wip_footer);
  return command{app, [opts] { return wip(*opts); }};
}

} // namespace batchq::cli
