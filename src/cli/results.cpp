// `batchq results JOB_ID [STEP] [--csv]`: the rows a job's step kept (SPEC
// §11), every page of GET .../sql/job/{id}/results/{step} — a table on a
// terminal, TSV when piped (format.hpp render_result_rows), the server's CSV
// with --csv, one JSON object with --json. docs/cli.md.
#include <unistd.h>

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "src/cli/client.hpp"
#include "src/cli/command.hpp"
#include "src/cli/format.hpp"

namespace batchq::cli {

namespace {

struct results_options {
  client_options client;
  std::string job_id;
  std::string step = "0";
  bool csv = false;
};

const char* results_footer =
  "\nPrints the rows the job's step kept (submit it with \"results\": true): every\n"
  "page, as a table on a terminal and as TSV when piped (tabs, newlines and\n"
  "backslashes escaped as \\t \\n \\\\, NULL as \\N). --csv prints the server's CSV\n"
  "(as PostgreSQL's COPY ... CSV HEADER writes it); --json one object with the\n"
  "columns, every row, row_count and truncated. A note on stderr says when the\n"
  "step's rows were cut at results.max-bytes.\n"
  "\nExit status: 0 shown; 1 not found, not finished (409), refused or\n"
  "unreachable; 2 bad usage.\n";

int results(const results_options& opts) {
  auto api = api_client::make("results", opts.client);
  if (!api)
    return 2;
  auto path = api->job_path(opts.job_id) + "/results/" + encode_path_segment(opts.step);
  if (opts.csv) {
    auto text = api->get_text(path, {{"format", "csv"}});
    if (!text)
      return 1;
    std::cout << *text;
    return 0;
  }
  nlohmann::json columns;
  std::vector<nlohmann::json> rows;
  bool truncated = false;
  int64_t row_count = 0;
  std::string cursor;
  for (;;) {
    name_values params{{"limit", "10000"}};
    if (!cursor.empty())
      params.emplace_back("cursor", cursor);
    auto page = api->get(path, params);
    if (!page)
      return 1;
    const auto& b = page->body;
    columns = b.value("columns", nlohmann::json::array());
    truncated = b.value("truncated", false);
    row_count = b.value("row_count", int64_t{0});
    if (auto r = b.find("rows"); r != b.end() && r->is_array())
      for (const auto& row : *r)
        rows.push_back(row);
    auto next = b.find("next");
    if (next == b.end() || !next->is_string() || next->get<std::string>() == cursor)
      break;
    cursor = next->get<std::string>();
  }
  if (opts.client.json) {
    nlohmann::ordered_json out;
    out["job_id"] = opts.job_id;
    out["step"] = opts.step;
    out["columns"] = columns;
    out["rows"] = rows;
    out["row_count"] = row_count;
    out["truncated"] = truncated;
    print_json(out);
    return 0;
  }
  std::cout << render_result_rows(columns, rows, ::isatty(STDOUT_FILENO) == 1);
  if (truncated)
    std::cerr << "batchq results: step " << opts.step << " kept only its first " << row_count
              << " rows (results.max-bytes)\n";
  return 0;
}

} // namespace

command add_results(CLI::App& program) {
  auto opts = std::make_shared<results_options>();
  auto* app = program.add_subcommand("results", "print the rows a job's step kept");
  app->add_option("JOB_ID", opts->job_id, "the job's id")->required();
  app->add_option("STEP", opts->step, "the step, from 0 (default 0)");
  app->add_flag("--csv", opts->csv, "print CSV as the server streams it");
  add_client_options(*app, opts->client);
  app->footer(results_footer);
  return command{app, [opts] { return results(*opts); }};
}

} // namespace batchq::cli
