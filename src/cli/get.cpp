// `batchq get <job_id>`: GET /user/{user}/api/v2/sql/job/{id} (SPEC §8), shown
// as text (format.hpp render_job) or as the server's JSON (client.hpp
// print_job). docs/cli.md.
#include <memory>

#include <CLI/CLI.hpp>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"

namespace batchq::cli {

namespace {

struct get_options {
  client_options client;
  std::string job_id;
};

const char* get_footer =
  "\nShows one job: id, user, status, created/updated times, elapsed time, the\n"
  "failure reason, job-level fallbacks, then each step with its status, time\n"
  "(started to ended), SQL, failure reason and fallbacks. --json prints the\n"
  "server's job as is.\n"
  "\nExit status: 0 the job was shown (whatever its status); 1 not found\n"
  "(`Job with id X not found`), refused or unreachable; 2 bad usage.\n";

int get(const get_options& opts) {
  auto api = api_client::make("get", opts.client);
  if (!api)
    return 2;
  auto r = api->get(api->job_path(opts.job_id));
  if (!r)
    return 1;
  print_job(*r, opts.client.json);
  return 0;
}

} // namespace

command add_get(CLI::App& program) {
  auto opts = std::make_shared<get_options>();
  auto* app = program.add_subcommand("get", "show one job and its steps");
  app->add_option("JOB_ID", opts->job_id, "the job's id")->required();
  add_client_options(*app, opts->client);
  app->footer(get_footer);
  return command{app, [opts] { return get(*opts); }};
}

} // namespace batchq::cli
