// `batchq watch <job_id>`: live per-step progress of one job until it is final,
// from long polls of GET .../sql/job/{id}?wait=<interval> (SPEC §8).
// On a terminal the block is redrawn in place (ANSI cursor up + erase); on
// anything else a new block is printed only when the job changed, so a log
// file shows each transition once. docs/cli.md.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"
#include "src/cli/format.hpp"

namespace batchq::cli {

namespace {

using nlohmann::json;

struct watch_options {
  client_options client;
  std::string job_id;
  double interval_s = 1;
};

const char* watch_footer =
  "\nShows the job's status and elapsed time and, per step, its status, time and\n"
  "SQL (and fallback status), until the job is final. On a terminal the display\n"
  "is redrawn in place every INTERVAL seconds (times tick); when stdout is not a\n"
  "terminal a new block is printed only when something changed (no ticking\n"
  "times). --json prints the server's job as one compact JSON line each time it\n"
  "changed. Interrupting watch does not cancel the job.\n"
  "\nExit status: 0 the job ended `done`; 1 it ended failed/cancelled/unknown, or\n"
  "a request failed; 2 bad usage.\n";

int watch(const watch_options& opts) {
  auto api = api_client::make("watch", opts.client);
  if (!api)
    return 2;
  const bool tty = !opts.client.json && ::isatty(STDOUT_FILENO) == 1;
  size_t shown_lines = 0;
  std::string last;
  auto show = [&](const api_reply& reply) {
    const auto& job = reply.body;
    if (opts.client.json) {
      auto text = nlohmann::ordered_json::parse(reply.raw, nullptr, false)
                    .dump(-1, ' ', false, json::error_handler_t::replace);
      if (text != last)
        std::cout << text << std::endl;
      last = std::move(text);
      return;
    }
    auto view = to_view(job);
    if (tty) {
      auto text = render_progress(view, now_ms());
      std::cout << redraw(shown_lines, text) << std::flush;
      shown_lines = count_lines(text);
      return;
    }
    auto text = render_progress(view, std::nullopt);
    if (text != last)
      std::cout << text << std::flush;
    last = std::move(text);
  };
  auto final_job = api->follow_job(opts.job_id, opts.interval_s, show);
  if (!final_job)
    return 1;
  return exit_code_of(final_job->body);
}

} // namespace

command add_watch(CLI::App& program) {
  auto opts = std::make_shared<watch_options>();
  auto* app = program.add_subcommand("watch", "follow a job's steps live until it is final");
  app->add_option("JOB_ID", opts->job_id, "the job's id")->required();
  app->add_option("--interval", opts->interval_s,
                  "seconds between refreshes, 0.1 to 60 (default 1); each is one long poll")
    ->check(CLI::Range(0.1, 60.0));
  add_client_options(*app, opts->client);
  app->footer(watch_footer);
  return command{app, [opts] { return watch(*opts); }};
}

} // namespace batchq::cli
