#include "src/cli/cli.hpp"

#include <iostream>

#include <CLI/CLI.hpp>

#include "src/cli/options.hpp"

namespace batchq::cli {

namespace {

const char* const commands_text = "serve, cancel";

std::string serve_footer() {
  return "\nA node runs the jobs users queue in Redis: each user's jobs one at a time, in\n"
         "order, different users in parallel. Until the HTTP API exists, plain `serve`\n"
         "runs the worker part only (the same as --worker-only); --api-only is refused.\n"
         "SIGTERM/SIGINT drains the node: running jobs get batch.shutdown-grace seconds,\n"
         "then go back to pending at the head of their queue; exit status 0.\n"
         "\nConfiguration (precedence: default < --config-file < flag); every key is in\n"
         "cluster/batchq.example.ini. Flags take the form --section.key=VALUE:\n"
         + config_keys_help();
}

std::string cancel_footer() {
  return "\nCancels job JOB_ID wherever it is: a pending job becomes `cancelled` in Redis;\n"
         "a running job's statement is stopped on the node that runs it (over the\n"
         "cluster link, else with pg_cancel_backend). Prints the resulting status\n"
         "(`cancelled`) or why it cannot be cancelled (`Cannot set status from done to\n"
         "cancelled`, `Job with id X not found`). Exit status 0 when cancelled, else 1.\n"
         "\nThe Redis keys (and any other key) may be given as flags, as for `serve`:\n"
         "  --config-file=PATH  --redis.host=HOST  --redis.port=PORT  --redis.db=N\n";
}

} // namespace

int run(int argc, char** argv) {
  CLI::App app{"batchq runs long SQL batch jobs for many users against PostgreSQL; jobs wait\n"
               "in per-user queues in Redis (CARTO Batch Queries compatible).",
               "batchq"};
  app.require_subcommand(1);
  app.footer("\nRun `batchq <command> --help` for a command's options.");

  serve_options so;
  auto* serve_cmd = app.add_subcommand("serve", "run a node (worker; the HTTP API is not built yet)");
  serve_cmd->add_flag("--worker-only", so.worker_only, "run the worker part only (the default for now)");
  serve_cmd->add_flag("--api-only", so.api_only, "run the HTTP API only (not available yet)");
  serve_cmd->add_option("--config-file", so.config_file, "INI file (CAF format) with any of the keys below");
  serve_cmd->allow_extras();
  serve_cmd->footer(serve_footer());

  cancel_options co;
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel a job by id (pending or running)");
  cancel_cmd->add_option("job_id", co.job_id, "the job's id")->required();
  cancel_cmd->add_option("--config-file", co.config_file, "INI file (CAF format), for the Redis keys");
  cancel_cmd->allow_extras();
  cancel_cmd->footer(cancel_footer());

  // An unknown command word gets a clear message rather than CLI11's
  // "A subcommand is required".
  if (argc >= 2) {
    std::string first = argv[1];
    if (!first.empty() && first[0] != '-' && first != "serve" && first != "cancel") {
      std::cerr << "batchq: unknown command '" << first << "' (commands: " << commands_text
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

  if (serve_cmd->parsed()) {
    so.flags = serve_cmd->remaining();
    if (so.api_only) {
      std::cerr << "batchq serve: --api-only is not available yet (the HTTP API is not built)\n";
      return 2;
    }
    return serve(so);
  }
  co.flags = cancel_cmd->remaining();
  return cancel(co);
}

} // namespace batchq::cli
