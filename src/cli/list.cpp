// `batchq list`: GET /user/{user}/api/v2/sql/job?limit=&cursor=&status=
// (SPEC §8), the user's jobs newest first, one page or (--all) every page.
// docs/cli.md.
#include <iostream>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"
#include "src/cli/format.hpp"

namespace batchq::cli {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

struct list_options {
  client_options client;
  std::vector<std::string> statuses;
  int limit = 0; // 0: the server's default (20)
  std::string cursor;
  bool all = false;
};

const char* list_footer =
  "\nPrints a table of the user's jobs, newest first: JOB_ID, STATUS, CREATED_AT and\n"
  "the SQL (steps joined with \"; \", cut to 60 characters), then, when there are\n"
  "more, the command that shows the next page. --all follows every page (--limit\n"
  "is then the page size). --json prints the server's {\"jobs\": [...], \"next\": ...}\n"
  "as is; with --all one such object holding every job and \"next\": null.\n"
  "\nExit status: 0 shown (also when there are no jobs); 1 refused or unreachable;\n"
  "2 bad usage.\n"
  "\nExamples:\n"
  "  batchq list --status failed,cancelled --limit 5\n"
  "  batchq list --all --json\n";

/// `next` of a page: its cursor, or "" at the end.
std::string next_of(const json& page) {
  auto n = page.is_object() ? page.find("next") : page.end();
  return n != page.end() && n->is_string() ? n->get<std::string>() : std::string{};
}

int list(const list_options& opts) {
  auto api = api_client::make("list", opts.client);
  if (!api)
    return 2;
  std::string status;
  for (const auto& s : opts.statuses)
    status += (status.empty() ? "" : ",") + s;
  json jobs = json::array();          // for the table
  ordered_json raw_jobs = ordered_json::array(); // for --json, in the server's key order
  std::string cursor = opts.cursor;
  std::set<std::string> seen; // a cursor coming back would loop forever
  for (;;) {
    name_values params;
    if (opts.limit > 0)
      params.emplace_back("limit", std::to_string(opts.limit));
    if (!cursor.empty())
      params.emplace_back("cursor", cursor);
    if (!status.empty())
      params.emplace_back("status", status);
    auto page = api->get(api->jobs_path(), params);
    if (!page)
      return 1;
    auto list = page->body.is_object() ? page->body.find("jobs") : page->body.end();
    if (list == page->body.end() || !list->is_array()) {
      api->fail("the server's answer has no \"jobs\" array");
      return 1;
    }
    if (!opts.all) {
      if (opts.client.json) {
        print_json(page->raw);
        return 0;
      }
      std::cout << render_job_table(*list);
      auto next = next_of(page->body);
      if (!next.empty())
        std::cout << "more: batchq list --cursor " << next
                  << (status.empty() ? "" : " --status " + status)
                  << (opts.limit > 0 ? " --limit " + std::to_string(opts.limit) : "") << "\n";
      return 0;
    }
    for (auto& j : *list)
      jobs.push_back(std::move(j));
    if (opts.client.json) {
      auto ordered = ordered_json::parse(page->raw, nullptr, false);
      for (auto& j : ordered["jobs"])
        raw_jobs.push_back(std::move(j));
    }
    cursor = next_of(page->body);
    if (cursor.empty())
      break;
    if (!seen.insert(cursor).second) {
      api->fail("the server returned the cursor '" + cursor + "' twice; stopping");
      return 1;
    }
  }
  if (opts.client.json)
    print_json(ordered_json{{"jobs", std::move(raw_jobs)}, {"next", nullptr}});
  else
    std::cout << render_job_table(jobs);
  return 0;
}

} // namespace

command add_list(CLI::App& program) {
  auto opts = std::make_shared<list_options>();
  auto* app = program.add_subcommand("list", "list the user's jobs, newest first");
  app->add_option("--status", opts->statuses,
                  "only jobs with these statuses, comma-separated (e.g. done,failed)")
    ->delimiter(',')
    ->check(CLI::IsMember({"pending", "running", "done", "failed", "cancelled", "skipped",
                           "unknown"}));
  app->add_option("--limit", opts->limit, "jobs per page, 1 to 100 (server default 20)")
    ->check(CLI::Range(1, 100));
  app->add_option("--cursor", opts->cursor, "start at this page (the `next` of a previous list)");
  app->add_flag("--all", opts->all, "follow every page and print all the jobs");
  add_client_options(*app, opts->client);
  app->footer(list_footer);
  return command{app, [opts] { return list(*opts); }};
}

} // namespace batchq::cli
