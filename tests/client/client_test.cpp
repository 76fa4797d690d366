// Process tests of the client commands (docs/cli.md): the real `batchq`
// binary against a real `batchq serve` node (HTTP API + worker) on the Redis
// and PostgreSQL of scripts/test. Every command, its text and --json output,
// exit codes, and what goes to stdout versus stderr.
#include <fstream>
#include <regex>

#include "tests/client/client_harness.hpp"

namespace batchq::test::client {
namespace {

/// Starts a node and fails the test when it does not become ready.
#define START_NODE(node)                                                                           \
  api_node node;                                                                                   \
  ASSERT_TRUE(node.wait_ready()) << "batchq serve did not become ready"

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Submits `sql`, returns the job id (and tracks it for cleanup).
std::string submit(account& a, const api_node& node, const std::string& sql) {
  auto r = run_cli({"submit", sql}, a.env(node));
  EXPECT_EQ(r.exit_code, 0) << r;
  auto id = first_word(r.out);
  EXPECT_FALSE(id.empty()) << r;
  a.track(id);
  return id;
}

std::string write_file(const std::string& text) {
  auto path = temp_path("batchq_job", ".json");
  std::ofstream{path} << text;
  return path;
}

// -- help --------------------------------------------------------------------------------

TEST(ClientCommands, EveryClientCommandExplainsItselfWithHelp) {
  auto top = run_cli({"--help"});
  ASSERT_EQ(top.exit_code, 0) << top;
  for (auto cmd : {"submit", "get", "results", "cancel", "list", "watch", "wip", "user"})
    EXPECT_TRUE(contains(top.out, std::string{"  "} + cmd + " ")) << cmd << "\n" << top;

  for (auto cmd : {"submit", "get", "results", "cancel", "list", "watch", "wip"}) {
    // A key in the environment is never echoed by the help.
    auto r = run_cli({cmd, "--help"}, {{"BATCHQ_API_KEY", "sekrit-key-123"}});
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r;
    for (auto word : {"--url", "BATCHQ_URL", "--user", "BATCHQ_USER", "--api-key",
                      "BATCHQ_API_KEY", "--json", "Exit status"})
      EXPECT_TRUE(contains(r.out, word)) << cmd << " lacks " << word << "\n" << r;
    EXPECT_FALSE(contains(r.out + r.err, "sekrit-key-123")) << cmd << "\n" << r;
  }
  for (auto sub : {"add", "list", "remove"}) {
    auto r = run_cli({"user", sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub << "\n" << r;
    EXPECT_TRUE(contains(r.out, "--redis.port")) << sub << "\n" << r;
  }
  auto add = run_cli({"user", "add", "--help"});
  for (auto word : {"--database-name", "--database-role", "--database-password",
                    "--database-host", "--database-port", "BATCHQ_DATABASE_PASSWORD"})
    EXPECT_TRUE(contains(add.out, word)) << word << "\n" << add;
  auto cancel = run_cli({"cancel", "--help"});
  EXPECT_TRUE(contains(cancel.out, "--direct")) << cancel;
}

// -- user --------------------------------------------------------------------------------

TEST(ClientCommands, UserAddPrintsAMasterKeyThatTheApiAcceptsAndListAndRemoveManageIt) {
  START_NODE(node);
  auto name = unique_name("client_user");
  auto added = run_cli(user_add_args(name));
  ASSERT_EQ(added.exit_code, 0) << added;
  // stdout is the key alone; the note about it goes to stderr.
  EXPECT_TRUE(std::regex_match(added.out, std::regex{"[A-Za-z0-9_-]{16,}\n"})) << added;
  EXPECT_TRUE(contains(added.err, "user '" + name + "' created")) << added;
  auto key = added.out.substr(0, added.out.size() - 1);

  httplib::Client http{"127.0.0.1", node.port()};
  http.set_bearer_token_auth(key);
  auto ok = http.Get("/user/" + name + "/api/v2/sql/job");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  http.set_bearer_token_auth("not-" + key);
  auto wrong = http.Get("/user/" + name + "/api/v2/sql/job");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401) << wrong->body;

  auto listed = run_cli({"user", "list", redis_flags()[0], redis_flags()[1]});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  EXPECT_TRUE(contains(listed.out, name + "\n")) << listed;
  auto listed_json = run_cli({"user", "list", "--json", redis_flags()[0], redis_flags()[1]});
  ASSERT_EQ(listed_json.exit_code, 0) << listed_json;
  auto names = json::parse(listed_json.out, nullptr, false);
  ASSERT_TRUE(names.is_array()) << listed_json;
  EXPECT_NE(std::find(names.begin(), names.end(), json(name)), names.end()) << listed_json;

  // The key is never shown again: a second add is refused unless --replace.
  auto again = run_cli(user_add_args(name));
  EXPECT_EQ(again.exit_code, 1) << again;
  EXPECT_TRUE(contains(again.err, "already exists")) << again;
  EXPECT_TRUE(again.out.empty()) << again;
  auto replace_args = user_add_args(name);
  replace_args.push_back("--replace");
  replace_args.push_back("--json");
  auto replaced = run_cli(replace_args);
  ASSERT_EQ(replaced.exit_code, 0) << replaced;
  auto rj = json::parse(replaced.out, nullptr, false);
  ASSERT_TRUE(rj.is_object()) << replaced;
  EXPECT_EQ(rj.value("user", ""), name);
  EXPECT_NE(rj.value("api_key", ""), key) << "a new key";
  http.set_bearer_token_auth(key);
  auto old_key = http.Get("/user/" + name + "/api/v2/sql/job");
  ASSERT_TRUE(old_key);
  EXPECT_EQ(old_key->status, 401) << "the replaced key stopped working: " << old_key->body;

  auto removed = run_cli({"user", "remove", name, redis_flags()[0], redis_flags()[1]});
  ASSERT_EQ(removed.exit_code, 0) << removed;
  EXPECT_TRUE(contains(removed.out, "removed user " + name)) << removed;
  auto gone = http.Get("/user/" + name + "/api/v2/sql/job");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404) << gone->body;
  auto twice = run_cli({"user", "remove", name, redis_flags()[0], redis_flags()[1]});
  EXPECT_EQ(twice.exit_code, 1) << twice;
  EXPECT_TRUE(contains(twice.err, "no user '" + name + "'")) << twice;
}

TEST(ClientCommands, UserCommandsRefuseBadNamesAndBadConfigurationWithExitTwo) {
  auto bad = run_cli(user_add_args("bad name*"));
  EXPECT_EQ(bad.exit_code, 2) << bad;
  EXPECT_TRUE(contains(bad.err, "bad user name")) << bad;
  auto missing = run_cli({"user", "add", "x", "--database-name", "db"});
  EXPECT_EQ(missing.exit_code, 2) << missing;
  EXPECT_TRUE(contains(missing.err, "--database-role")) << missing;
  auto flag = run_cli({"user", "list", "--redis.prot=1"});
  EXPECT_EQ(flag.exit_code, 2) << flag;
  auto down = run_cli({"user", "list", "--redis.port=" + std::to_string(free_port())});
  EXPECT_EQ(down.exit_code, 1) << down;
  EXPECT_TRUE(contains(down.err, "Redis at 127.0.0.1:")) << down;
}

// -- submit and get -------------------------------------------------------------------------

TEST(ClientCommands, SubmitOfPlainSqlPrintsTheIdAndGetShowsTheJob) {
  START_NODE(node);
  account a;
  auto r = run_cli({"submit", "SELECT 1"}, a.env(node));
  ASSERT_EQ(r.exit_code, 0) << r;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.out, m, std::regex{"(\\S+) (pending|running|done)\n"})) << r;
  auto id = m[1].str();
  a.track(id);
  EXPECT_TRUE(r.err.empty()) << r;

  auto done = poll_job(a.env(node), id, status_is("done"));
  ASSERT_EQ(done.value("status", ""), "done") << done.dump();
  EXPECT_EQ(done.value("job_id", ""), id);
  EXPECT_EQ(done.value("user", ""), a.name());
  EXPECT_EQ(done["query"], "SELECT 1");

  auto get = run_cli({"get", id}, a.env(node));
  ASSERT_EQ(get.exit_code, 0) << get;
  EXPECT_TRUE(contains(get.out, "job_id      " + id + "\n")) << get;
  EXPECT_TRUE(contains(get.out, "status      done\n")) << get;
  EXPECT_TRUE(contains(get.out, "created_at  ")) << get;
  EXPECT_TRUE(std::regex_search(get.out, std::regex{"\n  1  done  +\\S+ +SELECT 1\n"})) << get;
  EXPECT_FALSE(contains(get.out, "{")) << "no JSON noise\n" << get;

  // Flags win over the environment (here: a wrong key in the environment).
  auto env = a.env(node);
  env["BATCHQ_API_KEY"] = "wrong";
  auto flags = run_cli({"get", id, "--api-key", a.key(), "--json"}, env);
  ASSERT_EQ(flags.exit_code, 0) << flags;
  EXPECT_EQ(json::parse(flags.out, nullptr, false), done) << flags;
}

TEST(ClientCommands, SubmitWaitOfAUnifiedJsonFileFollowsTheJobToDoneAndExitsZero) {
  START_NODE(node);
  account a;
  auto path = write_file(R"J({"query": [{"query": "SELECT 1", "onsuccess": "SELECT 2"},
                                       "SELECT 3"],
                             "onsuccess": "SELECT 4"})J");
  auto r = run_cli({"submit", "@" + path, "--wait"}, a.env(node));
  std::remove(path.c_str());
  ASSERT_EQ(r.exit_code, 0) << r;
  auto id = first_word(r.out);
  a.track(id);
  EXPECT_TRUE(contains(r.out, "job_id      " + id + "\n")) << r;
  EXPECT_TRUE(contains(r.out, "status      done\n")) << r;
  EXPECT_TRUE(contains(r.out, "onsuccess   SELECT 4\n")) << r;
  EXPECT_TRUE(contains(r.out, "steps:\n")) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex{"\n  1  done  +\\S+ +SELECT 1\n"})) << r;
  EXPECT_TRUE(contains(r.out, "     onsuccess: SELECT 2\n     fallback: done\n")) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex{"\n  2  done  +\\S+ +SELECT 3\n"})) << r;

  // --wait --json prints the final job only, as the server sent it.
  auto again = run_cli({"submit", "@-", "--wait", "--json"}, a.env(node),
                       R"J({"query": ["SELECT 5", "SELECT 6"]})J");
  ASSERT_EQ(again.exit_code, 0) << again;
  auto j = json::parse(again.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << again;
  a.track(j.value("job_id", ""));
  EXPECT_EQ(j.value("status", ""), "done");
  ASSERT_TRUE(j["query"].is_array()) << again;
  EXPECT_EQ(j["query"].size(), 2u);
  EXPECT_EQ(j["query"][1].value("status", ""), "done");
}

TEST(ClientCommands, ResultsPrintsTheKeptRowsAsTsvCsvAndJson) {
  START_NODE(node);
  account a;
  auto r = run_cli({"submit", "@-", "--wait", "--json"}, a.env(node),
                   R"J({"query": "SELECT g AS n, E'a\\tb' AS t, NULL::int AS z FROM generate_series(1, 3) g",
                        "results": true})J");
  ASSERT_EQ(r.exit_code, 0) << r;
  auto id = json::parse(r.out, nullptr, false).value("job_id", "");
  a.track(id);
  auto tsv = run_cli({"results", id}, a.env(node)); // piped: TSV
  ASSERT_EQ(tsv.exit_code, 0) << tsv;
  EXPECT_EQ(tsv.out, "n\tt\tz\n1\ta\\tb\t\\N\n2\ta\\tb\t\\N\n3\ta\\tb\t\\N\n") << tsv;
  auto csv = run_cli({"results", id, "0", "--csv"}, a.env(node));
  ASSERT_EQ(csv.exit_code, 0) << csv;
  EXPECT_EQ(csv.out, "n,t,z\n1,a\tb,\n2,a\tb,\n3,a\tb,\n") << csv;
  auto js = run_cli({"results", id, "--json"}, a.env(node));
  ASSERT_EQ(js.exit_code, 0) << js;
  auto doc = json::parse(js.out, nullptr, false);
  EXPECT_EQ(doc["rows"], json::parse(R"([[1,"a\tb",null],[2,"a\tb",null],[3,"a\tb",null]])"))
    << js;
  EXPECT_EQ(doc["row_count"], 3);
  auto none = run_cli({"results", id, "4"}, a.env(node));
  EXPECT_EQ(none.exit_code, 1) << none;
  EXPECT_TRUE(contains(none.err, "Job " + id + " has no step 4 (HTTP 404)")) << none;
}

TEST(ClientCommands, SubmitWaitOfAFailingJobExitsOneAndShowsWhy) {
  START_NODE(node);
  account a;
  auto r = run_cli({"submit", "SELECT 1/0", "--wait"}, a.env(node));
  a.track(first_word(r.out));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(contains(r.out, "status      failed\n")) << r;
  EXPECT_TRUE(contains(r.out, "error       division by zero")) << r;
}

TEST(ClientCommands, SubmitReadsSqlFromStdinAndRepeatsOfAnIdempotencyKeyGiveTheFirstJob) {
  START_NODE(node);
  account a;
  auto key = unique_name("idem");
  auto first = run_cli({"submit", "-", "--idempotency-key", key}, a.env(node), "SELECT 7\n");
  ASSERT_EQ(first.exit_code, 0) << first;
  auto id = first_word(first.out);
  a.track(id);
  auto second = run_cli({"submit", "SELECT 8", "--idempotency-key", key}, a.env(node));
  ASSERT_EQ(second.exit_code, 0) << second;
  EXPECT_EQ(first_word(second.out), id) << second;
  EXPECT_TRUE(contains(second.out, "created earlier with this Idempotency-Key")) << second;

  auto job = poll_job(a.env(node), id, status_is("done"));
  EXPECT_EQ(job.value("status", ""), "done") << job.dump();
  EXPECT_EQ(job["query"], "SELECT 7\n") << "stdin is the SQL as is";
}

TEST(ClientCommands, SubmitRefusesMissingInputAndUnreadableFilesWithExitTwo) {
  env_vars env{{"BATCHQ_USER", "u"}, {"BATCHQ_API_KEY", "k"},
               {"BATCHQ_URL", "http://127.0.0.1:" + std::to_string(free_port())}};
  auto none = run_cli({"submit"}, env);
  EXPECT_EQ(none.exit_code, 2) << none;
  EXPECT_TRUE(contains(none.err, "INPUT")) << none;
  auto file = run_cli({"submit", "@/nonexistent/job.json"}, env);
  EXPECT_EQ(file.exit_code, 2) << file;
  EXPECT_TRUE(contains(file.err, "cannot read the file '/nonexistent/job.json'")) << file;
  auto empty = run_cli({"submit", "-"}, env, "  \n");
  EXPECT_EQ(empty.exit_code, 2) << empty;
  EXPECT_TRUE(contains(empty.err, "nothing on stdin")) << empty;
}

TEST(ClientCommands, TheServersValidationMessageIsShownWithExitOne) {
  START_NODE(node);
  account a;
  auto r = run_cli({"submit", "@-"}, a.env(node), R"J({"query": []})J");
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.err, "batchq submit: You must indicate a valid SQL (HTTP 400)\n") << r;
  EXPECT_TRUE(r.out.empty()) << r;
}

// -- list ----------------------------------------------------------------------------------

TEST(ClientCommands, ListShowsTheJobsNewestFirstFiltersByStatusAndFollowsPages) {
  START_NODE(node);
  account a;
  std::vector<std::string> ids;
  for (auto sql : {"SELECT 1", "SELECT 1/0", "SELECT 3"}) {
    auto r = run_cli({"submit", sql, "--wait"}, a.env(node));
    ids.push_back(first_word(r.out));
    a.track(ids.back());
  }

  auto table = run_cli({"list"}, a.env(node));
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_EQ(table.out.rfind("JOB_ID ", 0), 0u) << table;
  auto p3 = table.out.find(ids[2]), p2 = table.out.find(ids[1]), p1 = table.out.find(ids[0]);
  ASSERT_NE(p1, std::string::npos) << table;
  ASSERT_NE(p2, std::string::npos) << table;
  ASSERT_NE(p3, std::string::npos) << table;
  EXPECT_LT(p3, p2) << "newest first\n" << table;
  EXPECT_LT(p2, p1) << "newest first\n" << table;
  EXPECT_TRUE(std::regex_search(table.out, std::regex{ids[1] + " +failed +\\S+ +SELECT 1/0\n"}))
    << table;
  EXPECT_FALSE(contains(table.out, "more:")) << table;

  auto failed = run_cli({"list", "--status", "failed,cancelled"}, a.env(node));
  ASSERT_EQ(failed.exit_code, 0) << failed;
  EXPECT_TRUE(contains(failed.out, ids[1])) << failed;
  EXPECT_FALSE(contains(failed.out, ids[0])) << failed;
  EXPECT_FALSE(contains(failed.out, ids[2])) << failed;

  auto as_json = run_cli({"list", "--json"}, a.env(node));
  ASSERT_EQ(as_json.exit_code, 0) << as_json;
  auto page = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(page.is_object()) << as_json;
  ASSERT_TRUE(page["jobs"].is_array()) << as_json;
  ASSERT_EQ(page["jobs"].size(), 3u) << as_json;
  EXPECT_EQ(page["jobs"][0].value("job_id", ""), ids[2]);
  EXPECT_TRUE(page["next"].is_null()) << as_json;

  auto one = run_cli({"list", "--limit", "1"}, a.env(node));
  ASSERT_EQ(one.exit_code, 0) << one;
  EXPECT_TRUE(contains(one.out, ids[2])) << one;
  EXPECT_FALSE(contains(one.out, ids[1])) << one;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(one.out, m,
                                std::regex{"\nmore: batchq list --cursor (\\S+) --limit 1\n"}))
    << one;
  auto next = run_cli({"list", "--limit", "1", "--cursor", m[1].str()}, a.env(node));
  ASSERT_EQ(next.exit_code, 0) << next;
  EXPECT_TRUE(contains(next.out, ids[1])) << next;

  auto all = run_cli({"list", "--all", "--limit", "1", "--json"}, a.env(node));
  ASSERT_EQ(all.exit_code, 0) << all;
  auto every = json::parse(all.out, nullptr, false);
  ASSERT_TRUE(every.is_object()) << all;
  ASSERT_EQ(every["jobs"].size(), 3u) << all;
  EXPECT_EQ(every["jobs"][2].value("job_id", ""), ids[0]);
  EXPECT_TRUE(every["next"].is_null());
  auto all_text = run_cli({"list", "--all", "--limit", "2"}, a.env(node));
  ASSERT_EQ(all_text.exit_code, 0) << all_text;
  EXPECT_TRUE(contains(all_text.out, ids[0]) && contains(all_text.out, ids[2])) << all_text;
  EXPECT_FALSE(contains(all_text.out, "more:")) << all_text;

  auto bad = run_cli({"list", "--status", "finished"}, a.env(node));
  EXPECT_EQ(bad.exit_code, 2) << bad;
}

// -- cancel and wip ---------------------------------------------------------------------------

TEST(ClientCommands, CancelStopsAPendingAndARunningJobAndRefusesAFinalOne) {
  START_NODE(node);
  account a;
  auto running = submit(a, node, "SELECT pg_sleep(30)");
  auto pending = submit(a, node, "SELECT 2"); // waits behind the first (one job per user)
  auto r = poll_job(a.env(node), running, status_is("running"));
  ASSERT_EQ(r.value("status", ""), "running") << r.dump();

  auto wip = run_cli({"wip"}, a.env(node));
  ASSERT_EQ(wip.exit_code, 0) << wip;
  EXPECT_EQ(wip.out, running + "\n") << wip;
  auto wip_json = run_cli({"wip", "--json"}, a.env(node));
  ASSERT_EQ(wip_json.exit_code, 0) << wip_json;
  EXPECT_EQ(json::parse(wip_json.out, nullptr, false), (json{{a.name(), {running}}})) << wip_json;

  auto c1 = run_cli({"cancel", pending}, a.env(node));
  EXPECT_EQ(c1.exit_code, 0) << c1;
  EXPECT_EQ(c1.out, pending + " cancelled\n") << c1;

  auto c2 = run_cli({"cancel", running, "--json"}, a.env(node));
  EXPECT_EQ(c2.exit_code, 0) << c2;
  auto j = json::parse(c2.out, nullptr, false);
  EXPECT_EQ(j.value("status", ""), "cancelled") << c2;
  EXPECT_LT(c2.elapsed, 10s) << "the statement stopped promptly";

  auto get = run_cli({"get", running}, a.env(node));
  EXPECT_TRUE(contains(get.out, "status      cancelled\n")) << get;
  auto p = poll_job(a.env(node), pending, status_is("cancelled"));
  EXPECT_EQ(p.value("status", ""), "cancelled") << p.dump();

  auto again = run_cli({"cancel", running}, a.env(node));
  EXPECT_EQ(again.exit_code, 1) << again;
  EXPECT_EQ(again.err,
            "batchq cancel: Cannot set status from cancelled to cancelled (HTTP 400)\n")
    << again;
  EXPECT_TRUE(again.out.empty()) << again;

  EXPECT_TRUE(wait_until(
    [&] {
      auto w = run_cli({"wip"}, a.env(node));
      return w.out == "no jobs in progress\n";
    },
    10s, 100ms));

  // The operator path stays, and configuration flags belong to it alone.
  auto mixed = run_cli({"cancel", running, "--redis.port=1"}, a.env(node));
  EXPECT_EQ(mixed.exit_code, 2) << mixed;
  EXPECT_TRUE(contains(mixed.err, "only goes with --direct")) << mixed;
}

// -- watch -----------------------------------------------------------------------------------

TEST(ClientCommands, WatchOnANonTerminalPrintsEachChangeUntilDoneAndExitsZero) {
  START_NODE(node);
  account a;
  auto r = run_cli({"submit", "@-"}, a.env(node),
                   R"J({"query": [{"query": "SELECT pg_sleep(0.6)", "onsuccess": "SELECT 1"},
                                 "SELECT pg_sleep(0.6)"]})J");
  ASSERT_EQ(r.exit_code, 0) << r;
  auto id = first_word(r.out);
  a.track(id);
  auto w = run_cli({"watch", id, "--interval", "0.1"}, a.env(node));
  ASSERT_EQ(w.exit_code, 0) << w;
  EXPECT_FALSE(contains(w.out, "\x1b")) << "no terminal codes in a file\n" << w;
  auto step1_running = w.out.find("  1  running");
  auto step2_running = w.out.find("  2  running");
  auto job_done = w.out.find("job " + id + "  done");
  ASSERT_NE(step1_running, std::string::npos) << w;
  ASSERT_NE(step2_running, std::string::npos) << w;
  ASSERT_NE(job_done, std::string::npos) << w;
  EXPECT_LT(step1_running, step2_running) << w;
  EXPECT_LT(step2_running, job_done) << w;
  EXPECT_TRUE(std::regex_search(w.out.substr(job_done),
                                std::regex{"\n  1  done  +\\S+ +SELECT pg_sleep\\(0\\.6\\)  "
                                           "\\(fallback done\\)\n  2  done  +\\S+ +SELECT"}))
    << w;
  // Only changes are printed (about 13 polls; at most 8 distinct states),
  // never the same block twice in a row.
  std::vector<std::string> blocks;
  for (size_t pos = 0; pos < w.out.size();) {
    auto next = w.out.find("\njob ", pos);
    auto end = next == std::string::npos ? w.out.size() : next + 1;
    blocks.push_back(w.out.substr(pos, end - pos));
    pos = end;
  }
  EXPECT_LE(blocks.size(), 8u) << w;
  for (size_t i = 1; i < blocks.size(); ++i)
    EXPECT_NE(blocks[i], blocks[i - 1]) << w;

  // A job that ended failed: watch shows it and exits 1 at once.
  auto failed = run_cli({"submit", "SELECT 1/0", "--wait"}, a.env(node));
  auto fid = first_word(failed.out);
  a.track(fid);
  auto wf = run_cli({"watch", fid}, a.env(node));
  EXPECT_EQ(wf.exit_code, 1) << wf;
  EXPECT_TRUE(contains(wf.out, "job " + fid + "  failed")) << wf;
  EXPECT_TRUE(contains(wf.out, "error: division by zero")) << wf;
  EXPECT_LT(wf.elapsed, 5s) << wf;
}

// -- errors ----------------------------------------------------------------------------------

TEST(ClientCommands, WithoutAUserOrAKeyACommandExitsTwoNamingTheFlagAndTheVariable) {
  auto url = "http://127.0.0.1:" + std::to_string(free_port());
  for (auto args : std::vector<std::vector<std::string>>{{"get", "x"},
                                                          {"submit", "SELECT 1"},
                                                          {"cancel", "x"},
                                                          {"list"},
                                                          {"watch", "x"},
                                                          {"wip"}}) {
    auto no_key = run_cli(args, {{"BATCHQ_USER", "u"}, {"BATCHQ_URL", url}});
    EXPECT_EQ(no_key.exit_code, 2) << args[0] << "\n" << no_key;
    EXPECT_TRUE(contains(no_key.err, "--api-key") && contains(no_key.err, "BATCHQ_API_KEY"))
      << no_key;
    auto no_user = run_cli(args, {{"BATCHQ_API_KEY", "k"}, {"BATCHQ_URL", url}});
    EXPECT_EQ(no_user.exit_code, 2) << args[0] << "\n" << no_user;
    EXPECT_TRUE(contains(no_user.err, "--user") && contains(no_user.err, "BATCHQ_USER"))
      << no_user;
  }
  auto bad_url = run_cli({"get", "x", "--url", "localhost:8080"},
                         {{"BATCHQ_USER", "u"}, {"BATCHQ_API_KEY", "k"}});
  EXPECT_EQ(bad_url.exit_code, 2) << bad_url;
  EXPECT_TRUE(contains(bad_url.err, "bad --url")) << bad_url;
}

TEST(ClientCommands, AWrongKeyExitsOneWithUnauthorizedAndNeverShowsTheKey) {
  START_NODE(node);
  account a;
  auto env = a.env(node);
  env["BATCHQ_API_KEY"] = "wrong-key-" + a.key();
  for (auto args : std::vector<std::vector<std::string>>{
         {"get", "x"}, {"submit", "SELECT 1"}, {"cancel", "x"}, {"list"}, {"watch", "x"},
         {"wip"}}) {
    auto r = run_cli(args, env);
    EXPECT_EQ(r.exit_code, 1) << args[0] << "\n" << r;
    EXPECT_EQ(r.err, "batchq " + args[0] + ": Unauthorized (HTTP 401)\n") << r;
    EXPECT_TRUE(r.out.empty()) << r;
    EXPECT_FALSE(contains(r.out + r.err, a.key())) << r;
  }
}

TEST(ClientCommands, AnUnknownJobIsNotFound) {
  START_NODE(node);
  account a;
  for (auto cmd : {"get", "cancel", "watch"}) {
    auto r = run_cli({cmd, "no-such-job"}, a.env(node));
    EXPECT_EQ(r.exit_code, 1) << cmd << "\n" << r;
    EXPECT_EQ(r.err, std::string{"batchq "} + cmd
                       + ": Job with id no-such-job not found (HTTP 404)\n")
      << r;
  }
}

TEST(ClientCommands, AServerThatIsDownGivesOneClearLineAndExitOne) {
  auto url = "http://127.0.0.1:" + std::to_string(free_port());
  env_vars env{{"BATCHQ_URL", url}, {"BATCHQ_USER", "u"}, {"BATCHQ_API_KEY", "k-secret"}};
  for (auto args : std::vector<std::vector<std::string>>{
         {"get", "x"}, {"submit", "SELECT 1"}, {"cancel", "x"}, {"list"}, {"watch", "x"},
         {"wip"}}) {
    auto r = run_cli(args, env);
    EXPECT_EQ(r.exit_code, 1) << args[0] << "\n" << r;
    EXPECT_EQ(r.err, "batchq " + args[0] + ": cannot connect to " + url
                       + " (is `batchq serve` running there? set --url or BATCHQ_URL)\n")
      << r;
    EXPECT_FALSE(contains(r.err, "k-secret")) << r;
  }
}

} // namespace
} // namespace batchq::test::client
