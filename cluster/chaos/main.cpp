// batchq-chaos: the chaos suite (docs/cluster.md "The chaos suite"). One run:
//
//  1. a private redis-server with an append-only file (appendfsync always, so
//     an acknowledged write survives kill -9) and a log table + PL/pgSQL step
//     function in the given PostgreSQL: every job is one statement
//     `SELECT chaos_step_<run>(user, seq, job, ms)` that takes a per-user
//     advisory lock (a second statement of the same user at the same time
//     fails with "chaos: two statements ..."), sleeps `ms` and inserts
//     (user, seq, job, start, end) — one transaction, so only a committed run
//     leaves a row;
//  2. N `batchq serve --worker-only` nodes (short leases, sweep every second)
//     and U users x J jobs;
//  3. faults while the queues drain, each when a given share of the jobs is
//     final: kill -9 of a node (then a replacement starts), CLIENT KILL TYPE
//     normal, SIGSTOP of a node past its lease TTL then SIGCONT,
//     pg_terminate_backend of a running job, kill -9 of Redis and a restart
//     from its AOF, CLIENT KILL again, and a herd of H users with one job each
//     woken at once;
//  4. every job final (or the time is up), every node stopped with SIGTERM
//     (each must exit 0), then the checker (checker.hpp) reads Redis and the
//     log table and counts lost, stuck, reordered, overlapping, doubled and
//     falsely failed jobs. Exit 0 when nothing was violated.
//
//   batchq-chaos --batchq build/batchq --pg-port 5433 --mode fail|requeue
//
// Needs redis-server on PATH (Debian's redis-server) and a PostgreSQL with a
// trust-auth superuser `postgres` on 127.0.0.1 (scripts/test's; the port may
// also come from BATCHQ_TEST_PG_PORT). cluster/chaos.sh runs both modes.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <sys/stat.h>
#include <unistd.h>

#include "cluster/chaos/checker.hpp"
#include "cluster/harness/harness.hpp"
#include "messages/error.hpp"
#include "src/dev/binaries.hpp"
#include "src/dev/net.hpp"
#include "src/dev/process.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

using namespace std::chrono_literals;
using batchq::harness::clock_type;

namespace batchq::chaos {
namespace {

struct options {
  std::string batchq;
  int pg_port = 0;
  std::string mode = "fail";
  int nodes = 3;
  int users = 40;
  int jobs = 8;
  int job_ms = 100;
  int herd = 2000;
  int lease_ttl_ms = 2000;
  int timeout_s = 240;
  bool keep = false;
};

using harness::fatal;
using harness::fixed;
using harness::redis_proc;
using harness::say;
using harness::seconds_since;

/// One `batchq serve --worker-only` node.
struct node_proc {
  std::string id;
  std::string log_path;
  dev::child_process proc;
  bool killed = false;
  bool stopped = false; // SIGSTOP past the lease
};

struct world {
  options opt;
  std::string run;
  std::string dir;
  std::string redis_binary;
  std::unique_ptr<redis_proc> redis;
  std::vector<std::unique_ptr<node_proc>> nodes;
  int next_node = 0;
  /// Every job: id -> (user, seq).
  std::vector<job_fact> jobs;
  std::vector<std::string> fault_log;
  int64_t terminated = 0;
  std::set<std::string> dead_nodes;
  clock_type::time_point t0;

  std::string table() const { return "chaos_log_" + run; }
  std::string step_fn() const { return "chaos_step_" + run; }

  std::string pg_conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(opt.pg_port)
           + " user=postgres dbname=postgres connect_timeout=5";
  }

  redis::client batch_client() const {
    return redis::client{redis::endpoint{"127.0.0.1", redis->port(), 5}};
  }

  void fault(const std::string& what) {
    auto line = fixed(seconds_since(t0)) + " s: " + what;
    fault_log.push_back(line);
    say("fault at " + line);
  }
};

void prepare_postgres(world& w) {
  pqxx::connection c{w.pg_conninfo()};
  pqxx::nontransaction tx{c};
  tx.exec("CREATE TABLE " + w.table()
          + " (usr text, seq int, job text, started timestamptz, ended timestamptz)");
  tx.exec("CREATE FUNCTION " + w.step_fn()
          + "(u text, s int, j text, ms int) RETURNS void LANGUAGE plpgsql AS $$\n"
            "DECLARE t0 timestamptz := clock_timestamp();\n"
            "BEGIN\n"
            "  IF NOT pg_try_advisory_xact_lock(hashtext('"
          + w.run
          + "'), hashtext(u)) THEN\n"
            "    RAISE EXCEPTION 'chaos: two statements of user % at once', u;\n"
            "  END IF;\n"
            "  PERFORM pg_sleep(ms / 1000.0);\n"
            "  INSERT INTO "
          + w.table()
          + " VALUES (u, s, j, t0, clock_timestamp());\n"
            "END $$");
}

void drop_postgres(world& w) {
  try {
    pqxx::connection c{w.pg_conninfo()};
    pqxx::nontransaction tx{c};
    tx.exec("DROP TABLE IF EXISTS " + w.table());
    tx.exec("DROP FUNCTION IF EXISTS " + w.step_fn() + "(text, int, text, int)");
  } catch (const std::exception& e) {
    say(std::string{"clean-up of PostgreSQL failed: "} + e.what());
  }
}

/// Commands creating `user` (rails:users + master key, DB 5) and its jobs.
void add_user_commands(world& w, const std::string& user, int jobs, int ms,
                       harness::commands& cmds) {
  harness::add_user(cmds, user, w.opt.pg_port);
  for (int s = 1; s <= jobs; ++s) {
    auto id = user + "-" + std::to_string(s);
    auto sql = "SELECT " + w.step_fn() + "('" + user + "', " + std::to_string(s) + ", '" + id
               + "', " + std::to_string(ms) + ")";
    harness::add_job(cmds, user, id, sql, w.opt.pg_port);
    w.jobs.push_back(job_fact{id, user, s, true, "pending", ""});
  }
  cmds.push_back({"PUBLISH", std::string{redis::keys::users_channel}, user});
}

void run_commands(world& w, const harness::commands& cmds) {
  auto c = w.batch_client();
  harness::run_commands(c, cmds);
}

void start_node(world& w) {
  auto n = std::make_unique<node_proc>();
  n->id = "chaos-" + w.run + "-n" + std::to_string(++w.next_node);
  n->log_path = w.dir + "/" + n->id + ".log";
  dev::spawn_options o;
  o.argv = {w.opt.batchq,
            "serve",
            "--worker-only",
            "--redis.port=" + std::to_string(w.redis->port()),
            "--redis.db=5",
            "--postgres.port=" + std::to_string(w.opt.pg_port),
            "--http.port=0",
            "--cluster.node-id=" + n->id,
            "--batch.lease-ttl=" + std::to_string(w.opt.lease_ttl_ms),
            "--batch.sweep-interval=1",
            "--batch.rescan-interval=2",
            "--batch.capacity=8",
            "--batch.max-running=4",
            "--batch.shutdown-grace=5",
            "--batch.on-node-loss=" + w.opt.mode,
            "--log.format=json"};
  o.log_path = n->log_path;
  if (auto err = n->proc.spawn(o))
    fatal("batchq serve: " + message_of(err));
  w.nodes.push_back(std::move(n));
}

/// Waits until every running node registered (bounded).
void wait_registered(world& w) {
  auto c = w.batch_client();
  auto t0 = clock_type::now();
  for (auto& n : w.nodes) {
    if (n->killed)
      continue;
    while (true) {
      auto r = c.command({"EXISTS", redis::keys::node(n->id)});
      if (r && r->integer == 1)
        break;
      if (!n->proc.running())
        fatal(n->id + " exited: " + dev::log_tail(n->log_path));
      if (seconds_since(t0) > 30)
        fatal(n->id + " did not register");
      std::this_thread::sleep_for(20ms);
    }
  }
}

/// How many jobs are final now (-1 when Redis does not answer).
int64_t final_jobs(world& w, redis::client& c) {
  harness::commands cmds;
  for (const auto& j : w.jobs)
    cmds.push_back({"HGET", redis::keys::job(j.id), "status"});
  auto r = harness::pipeline_batched(c, cmds, 2000);
  if (!r)
    return -1;
  int64_t n = 0;
  for (auto& x : *r)
    if (x.is_string() && (x.str == "done" || x.str == "failed" || x.str == "cancelled"))
      ++n;
  return n;
}

void client_kill(world& w) {
  redis::client c{redis::endpoint{"127.0.0.1", w.redis->port(), 0}};
  auto r = c.command({"CLIENT", "KILL", "TYPE", "normal"});
  w.fault("CLIENT KILL TYPE normal (" + (r ? std::to_string(r->integer) : std::string{"?"})
          + " connections)");
}

/// pg_terminate_backend of one running job's backend (retried for a while
/// until one runs).
void terminate_a_backend(world& w) {
  pqxx::connection c{w.pg_conninfo()};
  auto t0 = clock_type::now();
  while (seconds_since(t0) < 3) {
    pqxx::nontransaction tx{c};
    // Found and terminated in one statement (the backend is a pooled
    // connection: it may run another job's statement a moment later).
    auto r = tx.exec("SELECT query, pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE state = 'active' AND query LIKE "
                     + tx.quote("/* % */ SELECT " + w.step_fn() + "(%")
                     + " ORDER BY query_start LIMIT 1");
    if (!r.empty() && r[0][1].as<bool>()) {
      auto q = r[0][0].as<std::string>();
      auto job = q.substr(3, q.find(" */") - 3);
      ++w.terminated;
      w.fault("pg_terminate_backend of the backend running job " + job);
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
  w.fault("pg_terminate_backend: no running job found");
}

/// Users of the herd: created and woken at once.
void wake_herd(world& w) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < w.opt.herd; ++i)
    add_user_commands(w, "c" + w.run + "h" + std::to_string(i), 1, 0, cmds);
  run_commands(w, cmds);
  w.fault("herd of " + std::to_string(w.opt.herd) + " users with one job each, woken at once");
}

/// The jobs recovered by surviving nodes from dead ones (their logs).
std::set<std::string> recovered_from_dead(const world& w) {
  std::set<std::string> out;
  for (const auto& n : w.nodes) {
    std::ifstream in{n->log_path};
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || j.value("event", "") != "job recovered")
        continue;
      if (w.dead_nodes.count(j.value("lost_node", "")) > 0)
        out.insert(j.value("job_id", ""));
    }
  }
  return out;
}

run_facts collect(world& w) {
  run_facts f;
  f.mode = w.opt.mode == "requeue" ? loss_mode::requeue : loss_mode::fail;
  f.dead_nodes = w.dead_nodes;
  f.terminated = w.terminated;
  f.recovered_from_dead = recovered_from_dead(w);
  auto c = w.batch_client();
  std::vector<std::vector<std::string>> cmds;
  for (auto& j : w.jobs)
    cmds.push_back({"HMGET", redis::keys::job(j.id), "status", "failed_reason"});
  auto r = c.pipeline(cmds);
  if (!r)
    fatal("reading jobs: " + message_of(r.error()));
  for (size_t i = 0; i < w.jobs.size(); ++i) {
    auto j = w.jobs[i];
    const auto& x = (*r)[i];
    j.exists = x.is_array() && x.elements.size() == 2 && x.elements[0].is_string();
    j.status = j.exists ? x.elements[0].str : "";
    j.failed_reason = j.exists && x.elements[1].is_string() ? x.elements[1].str : "";
    f.jobs.push_back(std::move(j));
  }
  auto count_keys = [&](const std::string& pattern, const std::string& type) {
    auto ks = redis::scan_keys(c, pattern, type);
    return ks ? static_cast<int64_t>(ks->size()) : -1;
  };
  f.leases_left = count_keys(std::string{redis::keys::lock_user_prefix} + "*", "string");
  f.queued_left = count_keys(std::string{redis::keys::queue_prefix} + "*", "list");
  auto wip = c.command({"SCARD", std::string{redis::keys::wip_users}});
  f.wip_left = wip ? wip->integer : -1;
  pqxx::connection pc{w.pg_conninfo()};
  pqxx::nontransaction tx{pc};
  auto rows = tx.exec("SELECT usr, seq, job, (extract(epoch from started) * 1000000)::bigint, "
                      "(extract(epoch from ended) * 1000000)::bigint FROM " + w.table());
  for (const auto& row : rows)
    f.rows.push_back(commit_row{row[0].as<std::string>(), row[1].as<int>(),
                                row[2].as<std::string>(), row[3].as<int64_t>(),
                                row[4].as<int64_t>()});
  return f;
}

int run(const options& opt) {
  world w;
  w.opt = opt;
  std::random_device rd;
  std::ostringstream rid;
  rid << std::hex << (rd() & 0xffffff);
  w.run = rid.str();
  w.dir = "/tmp/batchq-chaos-" + w.run;
  ::mkdir(w.dir.c_str(), 0755);
  auto rb = dev::find_redis_server();
  if (!rb)
    fatal(message_of(rb.error()));
  w.redis_binary = *rb;
  say("run " + w.run + ", mode " + opt.mode + ", " + std::to_string(opt.nodes) + " nodes, "
      + std::to_string(opt.users) + " users x " + std::to_string(opt.jobs) + " jobs of "
      + std::to_string(opt.job_ms) + " ms, then a herd of " + std::to_string(opt.herd)
      + "; lease-ttl " + std::to_string(opt.lease_ttl_ms) + " ms; files in " + w.dir);
  w.redis = std::make_unique<redis_proc>(w.redis_binary, w.dir, true);
  w.redis->start();
  prepare_postgres(w);
  for (int i = 0; i < opt.nodes; ++i)
    start_node(w);
  wait_registered(w);
  std::vector<std::vector<std::string>> cmds;
  for (int u = 0; u < opt.users; ++u)
    add_user_commands(w, "c" + w.run + "u" + std::to_string(u), opt.jobs, opt.job_ms, cmds);
  run_commands(w, cmds);
  const auto main_jobs = static_cast<int64_t>(w.jobs.size());
  w.t0 = clock_type::now();

  // The faults, each once a share of the (first) jobs is final.
  struct step {
    double at;
    std::function<void()> act;
  };
  std::optional<clock_type::time_point> resume_at;
  node_proc* paused = nullptr;
  std::vector<step> plan{
    {0.10,
     [&] {
       auto& n = *w.nodes.at(0);
       ::kill(n.proc.pid(), SIGKILL);
       n.proc.wait(5s);
       n.killed = true;
       w.dead_nodes.insert(n.id);
       w.fault("kill -9 of " + n.id + "; a replacement node starts");
       start_node(w);
     }},
    {0.20, [&] { client_kill(w); }},
    {0.30,
     [&] {
       paused = w.nodes.at(1).get();
       ::kill(paused->proc.pid(), SIGSTOP);
       paused->stopped = true;
       w.dead_nodes.insert(paused->id);
       resume_at = clock_type::now() + std::chrono::milliseconds{opt.lease_ttl_ms + 1000};
       w.fault("SIGSTOP of " + paused->id + " for lease-ttl + 1 s");
     }},
    {0.45, [&] { terminate_a_backend(w); }},
    {0.55,
     [&] {
       w.redis->kill9();
       w.redis->start();
       w.fault("kill -9 of Redis, restarted from its AOF");
     }},
    {0.70, [&] { client_kill(w); }},
    {0.80, [&] { wake_herd(w); }},
  };
  size_t next = 0;
  auto poll = w.batch_client();
  int64_t final = 0;
  while (true) {
    if (resume_at && clock_type::now() >= *resume_at) {
      ::kill(paused->proc.pid(), SIGCONT);
      w.fault("SIGCONT of " + paused->id);
      resume_at.reset();
    }
    auto n = final_jobs(w, poll);
    if (n >= 0)
      final = n;
    while (next < plan.size() && final >= static_cast<int64_t>(plan[next].at * main_jobs)) {
      plan[next].act();
      ++next;
    }
    if (next == plan.size() && !resume_at && final == static_cast<int64_t>(w.jobs.size()))
      break;
    if (seconds_since(w.t0) > opt.timeout_s) {
      say("time is up with " + std::to_string(w.jobs.size() - final) + " jobs not final");
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  auto drain_s = seconds_since(w.t0);
  say("all jobs final after " + fixed(drain_s) + " s; stopping the nodes");
  int bad_exits = 0;
  for (auto& n : w.nodes) {
    if (n->killed)
      continue;
    auto r = n->proc.stop(SIGTERM, 40s);
    if (!r || r->killed || r->status != 0) {
      ++bad_exits;
      w.fault_log.push_back(n->id + " did not exit 0 after SIGTERM");
      say(n->id + " did not exit 0 after SIGTERM: "
          + (r ? dev::child_process::describe(r->status) : std::string{"?"}) + "\n"
          + dev::log_tail(n->log_path, 15));
    }
  }
  auto facts = collect(w);
  auto v = check(facts);
  std::ostringstream report;
  report << "[chaos] result of run " << w.run << " (mode " << opt.mode << ")\n"
         << "  faults:\n";
  for (auto& f : w.fault_log)
    report << "    " << f << "\n";
  report << "  drained in " << fixed(drain_s) << " s (" << main_jobs << " jobs + " << opt.herd
         << " herd jobs)\n"
         << "  node exits not 0: " << bad_exits << "\n"
         << to_string(v);
  std::cout << report.str();
  std::ofstream{w.dir + "/report.txt"} << report.str();
  w.redis->stop();
  if (!opt.keep && v.ok() && bad_exits == 0) {
    drop_postgres(w);
    std::string rm = "rm -rf '" + w.dir + "'";
    [[maybe_unused]] auto rc = std::system(rm.c_str());
  } else {
    std::cout << "  kept: node logs and the Redis AOF in " << w.dir << ", the log table "
              << w.table() << "\n";
  }
  return v.ok() && bad_exits == 0 ? 0 : 1;
}

} // namespace
} // namespace batchq::chaos

int main(int argc, char** argv) {
  batchq::chaos::options opt;
  CLI::App app{"batchq-chaos: runs batchq nodes under faults and checks the invariants"};
  app.add_option("--batchq", opt.batchq, "the batchq binary")->required();
  app.add_option("--pg-port", opt.pg_port, "PostgreSQL port (default: $BATCHQ_TEST_PG_PORT)");
  app.add_option("--mode", opt.mode, "batch.on-node-loss: fail or requeue")
    ->check(CLI::IsMember({"fail", "requeue"}));
  app.add_option("--nodes", opt.nodes, "nodes at the start");
  app.add_option("--users", opt.users, "users");
  app.add_option("--jobs", opt.jobs, "jobs per user");
  app.add_option("--job-ms", opt.job_ms, "duration of each job's statement, ms");
  app.add_option("--herd", opt.herd, "users of the herd woken at once (one job each)");
  app.add_option("--lease-ttl", opt.lease_ttl_ms, "batch.lease-ttl of the nodes, ms");
  app.add_option("--timeout", opt.timeout_s, "give up after this many seconds");
  app.add_flag("--keep", opt.keep, "keep the files, the log table and the function");
  CLI11_PARSE(app, argc, argv);
  batchq::harness::set_tag("chaos");
  opt.pg_port = batchq::harness::pg_port_or_env(opt.pg_port);
  if (opt.pg_port <= 0) {
    std::cerr << "batchq-chaos: --pg-port or BATCHQ_TEST_PG_PORT is needed\n";
    return 2;
  }
  if (opt.nodes < 2) {
    std::cerr << "batchq-chaos: --nodes must be at least 2 (one is killed, one stopped)\n";
    return 2;
  }
  return batchq::chaos::run(opt);
}
