// `batchq submit`: POST /user/{user}/api/v2/sql/job (SPEC §8) with plain SQL
// (`{"query": SQL}`) or a JSON body taken as is from a file or stdin; with
// --wait, follows the job until it is final. docs/cli.md.
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"
#include "src/cli/format.hpp"

namespace batchq::cli {

namespace {

struct submit_options {
  client_options client;
  std::string input;
  bool wait = false;
  std::string idempotency_key;
};

const char* submit_footer =
  "\nINPUT is one of:\n"
  "  SQL          plain SQL, sent as {\"query\": SQL} (a simple job)\n"
  "  @FILE.json   the file's content sent as the JSON body as is: any job shape\n"
  "               (simple, multiple, CARTO's nested fallback form, unified)\n"
  "  -            plain SQL read from stdin\n"
  "  @-           a JSON body read from stdin\n"
  "\nPrints `<job_id> <status>`; `--json` prints the server's job instead. With\n"
  "--wait it then follows the job (long polls) and prints the final job as\n"
  "`batchq get` does. Interrupting --wait does not cancel the job.\n"
  "\nExit status: 0 the job was created (with --wait: the job ended `done`);\n"
  "1 the server refused it, could not be reached, or (with --wait) the job ended\n"
  "failed/cancelled/unknown; 2 bad usage (no INPUT, unreadable file, no user/key).\n"
  "\nExamples:\n"
  "  batchq submit 'UPDATE t SET x = 1'\n"
  "  batchq submit @job.json --wait\n"
  "  echo 'SELECT 1' | batchq submit - --idempotency-key nightly-2026-11-28\n";

std::optional<std::string> read_all(std::istream& in) {
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad())
    return std::nullopt;
  return text;
}

/// The request body for `input`, or nullopt after printing why (exit 2).
std::optional<std::string> request_body(const std::string& input) {
  auto say = [](const std::string& m) { std::cerr << "batchq submit: " << m << "\n"; };
  if (input.empty()) {
    say("nothing to submit: give SQL, @FILE.json, - or @- (see --help)");
    return std::nullopt;
  }
  if (input == "-" || input == "@-") {
    auto text = read_all(std::cin);
    if (!text || text->find_first_not_of(" \t\r\n") == std::string::npos) {
      say("nothing on stdin to submit");
      return std::nullopt;
    }
    if (input == "@-")
      return text;
    return nlohmann::json{{"query", *text}}.dump();
  }
  if (input[0] == '@') {
    auto path = input.substr(1);
    std::ifstream in{path, std::ios::binary};
    auto text = in ? read_all(in) : std::nullopt;
    if (!text) {
      say("cannot read the file '" + path + "'");
      return std::nullopt;
    }
    return text;
  }
  return nlohmann::json{{"query", input}}.dump();
}

int submit(const submit_options& opts) {
  auto body = request_body(opts.input);
  if (!body)
    return 2;
  auto api = api_client::make("submit", opts.client);
  if (!api)
    return 2;
  name_values headers;
  if (!opts.idempotency_key.empty())
    headers.emplace_back("Idempotency-Key", opts.idempotency_key);
  auto created = api->post_json(api->jobs_path(), *body, headers);
  if (!created)
    return 1;
  auto view = to_view(created->body);
  if (view.job_id.empty()) {
    api->fail("the server's answer has no job_id");
    return 1;
  }
  if (!opts.wait) {
    if (opts.client.json) {
      print_json(created->raw);
    } else {
      std::cout << view.job_id << " " << view.status
                << (created->status == 200 ? " (created earlier with this Idempotency-Key)" : "")
                << "\n";
    }
    return 0;
  }
  if (!opts.client.json)
    std::cout << view.job_id << " " << view.status << std::endl;
  auto final_job = api->follow_job(view.job_id, 30, [](const api_reply&) {});
  if (!final_job)
    return 1;
  print_job(*final_job, opts.client.json);
  return exit_code_of(final_job->body);
}

} // namespace

command add_submit(CLI::App& program) {
  auto opts = std::make_shared<submit_options>();
  auto* app = program.add_subcommand("submit", "queue a SQL job (plain SQL or a JSON body)");
  app->add_option("INPUT", opts->input,
                  "SQL text, @FILE.json, - (SQL on stdin) or @- (JSON on stdin)")
    ->required();
  app->add_flag("--wait", opts->wait,
                "follow the job until it is final and print it; exit status 0 only if done");
  app->add_option("--idempotency-key", opts->idempotency_key,
                  "a repeat with the same key within 24 h returns the first job, creates none");
  add_client_options(*app, opts->client);
  app->footer(submit_footer);
  return command{app, [opts] { return submit(*opts); }};
}

} // namespace batchq::cli
