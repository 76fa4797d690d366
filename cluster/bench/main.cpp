// batchq-bench: the throughput and latency benchmark (docs/performance.md).
// One run starts a private redis-server (no persistence), a worker node
// (`batchq serve --worker-only`, capacity 4) and an API node
// (`batchq serve --api-only`) on the given PostgreSQL, and prints every
// scenario next to pgbench's ceiling for the same statement over the same
// number of connections, measured in the same run (the machines are shared
// and noisy: only ratios compare across runs):
//
//   drained      U users x J jobs of `select 1`, written in CARTO's layout,
//                woken at once by one PUBLISH per user; jobs/s against
//                pgbench -c 4 (-c 1 for one user);
//   trickle      20 jobs/s over 10 users through the HTTP API; created_at ->
//                done p50/p99;
//   cancel       DELETE of running `pg_sleep(10)` jobs -> the statement gone
//                from pg_stat_activity, p50/p99;
//   fairness     one user with many jobs queued first, then 50 users with one
//                job each: the heavy user's jobs that finished between the
//                light users' wake-up and the last light job's end;
//   floor        the drained sizes again, run by the worker's own per-job code
//                (turn script, job model, pooled session) from plain threads
//                of this process, without actors (floor.hpp): what the actor
//                path costs, and what the per-job work itself costs;
//   results      one job keeping a million rows, against psql's COPY.
//
// Per scenario also the worker's CPU per job (utime+stime of its process),
// Redis' and PostgreSQL's CPU per job (their processes; Redis' time executing
// commands from INFO commandstats),
// the worker's Redis and PostgreSQL round trips per job (its /metrics
// counters), the Redis commands per job (INFO commandstats, commands inside
// scripts included, the driver's own polling subtracted) and the worker's
// peak RSS. `--smoke` runs tiny sizes (CI: shows that every scenario runs;
// no timing is asserted anywhere).
//
//   batchq-bench --batchq build/batchq [--pg-port 5433] [--smoke] [--only NAME]
//                [--drained UxJ]...
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <unistd.h>

#include "cluster/bench/floor.hpp"
#include "cluster/harness/harness.hpp"
#include "messages/error.hpp"
#include "src/dev/binaries.hpp"
#include "src/dev/net.hpp"
#include "src/dev/process.hpp"
#include "src/job/clock.hpp"
#include "src/metrics/metrics.hpp"
#include "src/redis/keys.hpp"

using namespace std::chrono_literals;

namespace batchq::bench {
namespace {

using harness::clock_type;
using harness::commands;
using harness::fatal;
using harness::fixed;
using harness::say;
using harness::seconds_since;

struct options {
  std::string batchq;
  int pg_port = 0;
  bool smoke = false;
  bool keep = false;
  int pgbench_seconds = 5;
  /// Extra flags for both nodes (e.g. CAF's --work-stealing.* to compare).
  std::vector<std::string> node_args;
  /// Only the scenarios whose name starts with one of these (all when empty).
  std::vector<std::string> only;
  /// Sizes of the drained (and floor) scenarios instead of the defaults, "UxJ".
  std::vector<std::string> drained;
};

struct sizes {
  std::vector<std::pair<int, int>> drained; // users x jobs
  int trickle_seconds = 10;
  int trickle_rate = 20;
  int trickle_users = 10;
  int cancel_rounds = 5;
  int cancel_jobs = 4;
  int heavy_jobs = 1000;
  int light_users = 50;
  int result_rows = 1000000;
};

sizes sizes_for(bool smoke) {
  sizes s;
  if (smoke) {
    s.drained = {{2, 10}, {1, 20}, {20, 2}, {200, 1}};
    s.trickle_seconds = 1;
    s.cancel_rounds = 1;
    s.cancel_jobs = 2;
    s.heavy_jobs = 40;
    s.light_users = 5;
    s.result_rows = 2000;
  } else {
    s.drained = {{8, 100}, {1, 300}, {200, 5}, {10000, 1}};
  }
  return s;
}

/// One node process and its HTTP port (for /metrics, and the API).
struct node {
  std::string id;
  uint16_t http_port = 0;
  std::string log_path;
  dev::child_process proc;
};

/// What is read before and after a scenario.
struct snapshot {
  double cpu_s = 0;
  /// CPU of redis-server and of every PostgreSQL process.
  double redis_cpu_s = 0;
  double pg_cpu_s = 0;
  uint64_t redis_rt = 0;
  uint64_t pg_rt = 0;
  std::map<std::string, uint64_t> cmdstats;
  /// Microseconds Redis spent executing commands (INFO commandstats usec).
  uint64_t cmd_usec = 0;
  /// INFO stats total_connections_received.
  uint64_t connections = 0;
  clock_type::time_point at;
};

struct world {
  options opt;
  sizes sz;
  std::string dir;
  std::unique_ptr<harness::redis_proc> redis;
  node worker;
  node api;
  /// Commands the driver itself sent while a scenario ran (by name).
  std::map<std::string, uint64_t> own;
  /// Round trips of one /metrics scrape of the worker (its Redis gauges).
  uint64_t scrape_rt = 0;
  double tps_c4 = 0;
  double tps_c1 = 0;
  int seq = 0;
  pid_t redis_pid = 0;
  /// The postmaster: its children are the PostgreSQL processes.
  pid_t postmaster_pid = 0;

  redis::client batch() const { return redis->client(5); }
  std::string pg_conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(opt.pg_port)
           + " user=postgres dbname=postgres connect_timeout=5";
  }
};

// -- the processes --------------------------------------------------------------------

void start_node(world& w, node& n, const std::string& role) {
  auto p = dev::free_loopback_port();
  if (!p)
    fatal("no free port");
  n.http_port = *p;
  n.id = "bench-" + std::to_string(::getpid()) + "-" + role;
  n.log_path = w.dir + "/" + n.id + ".log";
  dev::spawn_options o;
  o.argv = {w.opt.batchq,
            "serve",
            role == "worker" ? "--worker-only" : "--api-only",
            "--redis.port=" + std::to_string(w.redis->port()),
            "--redis.db=5",
            "--postgres.port=" + std::to_string(w.opt.pg_port),
            "--http.port=" + std::to_string(n.http_port),
            "--cluster.node-id=" + n.id,
            "--batch.capacity=4",
            "--batch.rescan-interval=3600",
            "--results.max-bytes=1073741824", // the results scenario keeps all of its rows
            "--log.level=warning"};
  o.argv.insert(o.argv.end(), w.opt.node_args.begin(), w.opt.node_args.end());
  o.log_path = n.log_path;
  if (auto err = n.proc.spawn(o))
    fatal("batchq serve: " + message_of(err));
  auto t0 = clock_type::now();
  httplib::Client c{"127.0.0.1", n.http_port};
  c.set_connection_timeout(1s);
  while (true) {
    auto r = c.Get("/ready");
    if (r && r->status == 200)
      return;
    if (!n.proc.running())
      fatal(n.id + " exited: " + dev::log_tail(n.log_path));
    if (seconds_since(t0) > 30)
      fatal(n.id + " not ready after 30 s: " + dev::log_tail(n.log_path));
    std::this_thread::sleep_for(20ms);
  }
}

void stop_node(node& n) {
  auto r = n.proc.stop(SIGTERM, 30s);
  if (!r || r->killed || r->status != 0)
    say(n.id + " did not exit 0 after SIGTERM: " + dev::log_tail(n.log_path, 10));
}

// -- measurements ---------------------------------------------------------------------

/// The fields of /proc/<pid>/stat after the command name (state first);
/// empty when the process is gone.
std::vector<std::string> stat_fields(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  std::vector<std::string> out;
  if (close == std::string::npos || close + 2 > all.size())
    return out;
  std::istringstream rest{all.substr(close + 2)};
  for (std::string f; rest >> f;)
    out.push_back(std::move(f));
  return out;
}

double cpu_seconds(pid_t pid) {
  // Field 3 (state) is index 0: utime is field 14, stime field 15.
  auto f = stat_fields(pid);
  if (f.size() < 13)
    return 0;
  auto ticks = std::stod(f[11]) + std::stod(f[12]);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// VmHWM of `pid` in MiB.
double peak_rss_mib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

/// The parent pid of `pid` (0 when gone): field 4.
pid_t parent_of(pid_t pid) {
  auto f = stat_fields(pid);
  return f.size() < 2 ? 0 : static_cast<pid_t>(std::stol(f[1]));
}

/// CPU of the postmaster and all its children (backends, walwriter, ...);
/// backends that exited are not counted (a node's pooled ones live on).
double pg_cpu_seconds(pid_t postmaster) {
  if (postmaster <= 0)
    return 0;
  double total = cpu_seconds(postmaster);
  for (auto& e : std::filesystem::directory_iterator{"/proc"}) {
    auto name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
      continue;
    auto pid = static_cast<pid_t>(std::stol(name));
    if (parent_of(pid) == postmaster)
      total += cpu_seconds(pid);
  }
  return total;
}

uint64_t metric(const std::string& text, const std::string& name) {
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0)
      return static_cast<uint64_t>(std::stod(line.substr(name.size() + 1)));
  return 0;
}

std::string scrape(const node& n) {
  httplib::Client c{"127.0.0.1", n.http_port};
  auto r = c.Get("/metrics");
  if (!r || r->status != 200)
    fatal("GET /metrics of " + n.id + " failed");
  return r->body;
}

/// INFO stats total_connections_received.
uint64_t connections_received(world& w) {
  auto c = w.redis->client(0);
  auto r = c.command({"INFO", "stats"});
  if (!r || !r->is_string())
    return 0;
  auto p = r->str.find("total_connections_received:");
  return p == std::string::npos ? 0 : std::stoull(r->str.substr(p + 27));
}

std::map<std::string, uint64_t> commandstats(world& w, uint64_t* usec = nullptr) {
  auto c = w.redis->client(0);
  auto r = c.command({"INFO", "commandstats"});
  if (!r)
    fatal("INFO commandstats: " + message_of(r.error()));
  std::map<std::string, uint64_t> out;
  std::istringstream in{r->str};
  std::string line;
  while (std::getline(in, line)) {
    // cmdstat_hget:calls=12,usec=...
    if (line.rfind("cmdstat_", 0) != 0)
      continue;
    auto colon = line.find(':');
    auto calls = line.find("calls=");
    if (colon == std::string::npos || calls == std::string::npos)
      continue;
    out[line.substr(8, colon - 8)] = std::stoull(line.substr(calls + 6));
    auto us = line.find("usec=");
    if (usec != nullptr && us != std::string::npos && line.compare(8, colon - 8, "info") != 0)
      *usec += std::stoull(line.substr(us + 5));
  }
  return out;
}

/// Before a scenario: the worker's counters, then Redis' (the scrape's own
/// Redis commands come before the INFO, so they are not counted).
snapshot before(world& w) {
  snapshot s;
  auto m = scrape(w.worker);
  s.redis_rt = metric(m, "batchq_redis_round_trips_total");
  s.pg_rt = metric(m, "batchq_postgres_round_trips_total");
  s.cmdstats = commandstats(w, &s.cmd_usec);
  s.connections = connections_received(w);
  s.cpu_s = cpu_seconds(w.worker.proc.pid());
  s.redis_cpu_s = cpu_seconds(w.redis_pid);
  s.pg_cpu_s = pg_cpu_seconds(w.postmaster_pid);
  s.at = clock_type::now();
  w.own.clear();
  return s;
}

/// After: Redis' first, then the worker's (its scrape costs scrape_rt).
snapshot after(world& w) {
  snapshot s;
  s.at = clock_type::now();
  s.cpu_s = cpu_seconds(w.worker.proc.pid());
  s.redis_cpu_s = cpu_seconds(w.redis_pid);
  s.pg_cpu_s = pg_cpu_seconds(w.postmaster_pid);
  s.cmdstats = commandstats(w, &s.cmd_usec);
  s.connections = connections_received(w);
  auto m = scrape(w.worker);
  s.redis_rt = metric(m, "batchq_redis_round_trips_total") - w.scrape_rt;
  s.pg_rt = metric(m, "batchq_postgres_round_trips_total");
  return s;
}

uint64_t commands_between(world& w, const snapshot& a, const snapshot& b) {
  uint64_t n = 0;
  for (auto& [name, calls] : b.cmdstats) {
    if (name == "info")
      continue;
    auto i = a.cmdstats.find(name);
    n += calls - (i == a.cmdstats.end() ? 0 : i->second);
  }
  for (auto& [name, calls] : w.own)
    n -= std::min(n, calls);
  return n;
}

struct row {
  std::string name;
  int jobs = 0;
  double seconds = 0;
  double ceiling = 0;
  std::string ceiling_name;
  double cpu_ms_per_job = 0;
  double redis_cpu_ms_per_job = 0;
  double redis_exec_ms_per_job = 0;
  double pg_cpu_ms_per_job = 0;
  double redis_rt_per_job = 0;
  double redis_cmds_per_job = 0;
  double pg_rt_per_job = 0;
  uint64_t connections = 0;
  std::string extra;
};

row make_row(world& w, std::string name, int jobs, const snapshot& a, const snapshot& b,
             double ceiling, std::string ceiling_name) {
  row r;
  r.name = std::move(name);
  r.jobs = jobs;
  r.seconds = std::chrono::duration<double>(b.at - a.at).count();
  r.ceiling = ceiling;
  r.ceiling_name = std::move(ceiling_name);
  double n = jobs > 0 ? jobs : 1;
  r.cpu_ms_per_job = (b.cpu_s - a.cpu_s) * 1000 / n;
  r.redis_cpu_ms_per_job = (b.redis_cpu_s - a.redis_cpu_s) * 1000 / n;
  r.redis_exec_ms_per_job = static_cast<double>(b.cmd_usec - a.cmd_usec) / 1000 / n;
  // Backends that exited meanwhile (pgbench's) take their CPU with them.
  r.pg_cpu_ms_per_job = std::max(0.0, b.pg_cpu_s - a.pg_cpu_s) * 1000 / n;
  r.redis_rt_per_job = static_cast<double>(b.redis_rt - a.redis_rt) / n;
  r.redis_cmds_per_job = static_cast<double>(commands_between(w, a, b)) / n;
  r.pg_rt_per_job = static_cast<double>(b.pg_rt - a.pg_rt) / n;
  r.connections = b.connections - a.connections;
  return r;
}

std::string render(const row& r) {
  std::ostringstream out;
  double rate = r.jobs / (r.seconds > 0 ? r.seconds : 1e-9);
  out << r.name << ": " << r.jobs << " jobs in " << fixed(r.seconds, 2) << " s = "
      << fixed(rate, 0) << " jobs/s";
  if (r.ceiling > 0)
    out << " = " << fixed(rate / r.ceiling, 3) << " of " << r.ceiling_name;
  out << "; worker CPU " << fixed(r.cpu_ms_per_job, 3) << " ms/job, Redis "
      << fixed(r.redis_rt_per_job, 2) << " round trips/job (" << fixed(r.redis_cmds_per_job, 1)
      << " commands), PostgreSQL " << fixed(r.pg_rt_per_job, 2) << " round trips/job; CPU/job "
      << "of Redis " << fixed(r.redis_cpu_ms_per_job, 3) << " ms (executing commands "
      << fixed(r.redis_exec_ms_per_job, 3) << " ms), of PostgreSQL "
      << fixed(r.pg_cpu_ms_per_job, 3) << " ms; Redis connections opened " << r.connections;
  if (!r.extra.empty())
    out << "; " << r.extra;
  return out.str();
}

// -- pgbench --------------------------------------------------------------------------

/// A PostgreSQL client program (pgbench, psql) beside the server binaries
/// found, else by name on PATH.
std::string pg_client(const std::string& name) {
  if (auto pg = dev::find_postgres()) {
    auto p = pg->bindir + "/" + name;
    if (dev::is_executable(p))
      return p;
  }
  return name;
}

double pgbench_tps(world& w, int clients) {
  auto script = w.dir + "/select1.sql";
  std::ofstream{script} << "select 1;\n";
  auto out = w.dir + "/pgbench-c" + std::to_string(clients) + ".txt";
  auto cmd = pg_client("pgbench") + " -h 127.0.0.1 -p " + std::to_string(w.opt.pg_port)
             + " -U postgres -n -c " + std::to_string(clients) + " -j "
             + std::to_string(std::min(clients, 2)) + " -T "
             + std::to_string(w.opt.pgbench_seconds) + " -f " + script + " postgres > " + out
             + " 2>&1";
  if (std::system(cmd.c_str()) != 0)
    fatal("pgbench failed: " + dev::log_tail(out));
  std::ifstream in{out};
  std::string line;
  while (std::getline(in, line)) {
    auto p = line.find("tps = ");
    if (p != std::string::npos)
      return std::stod(line.substr(p + 6));
  }
  fatal("no tps in pgbench's output: " + dev::log_tail(out));
}

// -- jobs -----------------------------------------------------------------------------

struct batch_of_jobs {
  std::vector<std::string> users;
  /// Per user, its job ids in order.
  std::map<std::string, std::vector<std::string>> ids;
  int total = 0;
};

batch_of_jobs write_jobs(world& w, const std::string& prefix, int users, int per_user,
                         const std::string& sql) {
  batch_of_jobs b;
  commands cmds;
  ++w.seq;
  for (int u = 1; u <= users; ++u) {
    auto user = prefix + std::to_string(w.seq) + "u" + std::to_string(u);
    harness::add_user(cmds, user, w.opt.pg_port);
    b.users.push_back(user);
    for (int j = 1; j <= per_user; ++j) {
      auto id = user + "-" + std::to_string(j);
      harness::add_job(cmds, user, id, sql, w.opt.pg_port);
      b.ids[user].push_back(id);
      ++b.total;
    }
  }
  auto c = w.batch();
  harness::run_commands(c, cmds);
  return b;
}

void wake(world& w, const std::vector<std::string>& users) {
  commands cmds;
  for (auto& u : users)
    cmds.push_back({"PUBLISH", std::string{redis::keys::users_channel}, u});
  auto c = w.batch();
  harness::run_commands(c, cmds);
  w.own["publish"] += users.size();
}

bool final_status(const std::string& s) {
  return s == "done" || s == "failed" || s == "cancelled";
}

/// Waits until every job of `b` is final: a user's jobs run in order, so its
/// last job being final means all are (checked again at the end). Polls with
/// pipelined HGETs, counted as the driver's own.
void wait_final(world& w, const batch_of_jobs& b, double timeout_s) {
  auto c = w.batch();
  std::vector<std::string> open = b.users;
  auto t0 = clock_type::now();
  while (!open.empty()) {
    commands cmds;
    for (auto& u : open)
      cmds.push_back({"HGET", redis::keys::job(b.ids.at(u).back()), "status"});
    auto r = c.pipeline(cmds);
    w.own["hget"] += cmds.size();
    if (!r)
      fatal("polling job statuses: " + message_of(r.error()));
    std::vector<std::string> still;
    for (size_t i = 0; i < open.size(); ++i)
      if (!(*r)[i].is_string() || !final_status((*r)[i].str))
        still.push_back(open[i]);
    open.swap(still);
    if (open.empty())
      break;
    if (seconds_since(t0) > timeout_s)
      fatal(std::to_string(open.size()) + " users' jobs not final after "
            + fixed(timeout_s, 0) + " s (first: " + open.front() + ")");
    std::this_thread::sleep_for(open.size() > 100 ? 20ms : 2ms);
  }
}

/// What the driver reads of a job after a scenario.
struct job_state {
  std::string status;
  std::string created_at;
  std::string updated_at;
};

/// Every job of `b`, by id (pipelined).
std::map<std::string, job_state> read_jobs(world& w, const batch_of_jobs& b) {
  std::vector<std::string> ids;
  commands cmds;
  for (auto& u : b.users)
    for (auto& id : b.ids.at(u)) {
      ids.push_back(id);
      cmds.push_back({"HMGET", redis::keys::job(id), "status", "created_at", "updated_at"});
    }
  auto c = w.batch();
  auto r = harness::pipeline_batched(c, cmds);
  if (!r)
    fatal("reading jobs: " + message_of(r.error()));
  std::map<std::string, job_state> out;
  for (size_t k = 0; k < r->size(); ++k) {
    auto& e = (*r)[k].elements;
    auto at = [&](size_t i) { return i < e.size() ? e[i].str : std::string{}; };
    out[ids[k]] = {at(0), at(1), at(2)};
  }
  return out;
}

void require_all_done(world& w, const batch_of_jobs& b, const std::string& what) {
  int not_done = 0;
  std::string first;
  for (auto& [id, st] : read_jobs(w, b))
    if (st.status != "done") {
      if (first.empty())
        first = id + " " + st.status;
      ++not_done;
    }
  if (not_done > 0)
    fatal(what + ": " + std::to_string(not_done) + " jobs not done (first: " + first + ")");
}

double ms_between(const std::string& from_iso, const std::string& to_iso) {
  auto a = job::parse_iso8601(from_iso);
  auto b = job::parse_iso8601(to_iso);
  if (!a || !b)
    return 0;
  return std::chrono::duration<double, std::milli>(*b - *a).count();
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

// -- scenarios ------------------------------------------------------------------------

row drained(world& w, int users, int per_user) {
  auto b = write_jobs(w, "d", users, per_user, "select 1");
  auto a = before(w);
  wake(w, b.users);
  wait_final(w, b, 600);
  auto z = after(w);
  require_all_done(w, b, "drained");
  bool one = users == 1;
  auto r = make_row(w, std::to_string(users) + " users x " + std::to_string(per_user), b.total,
                    a, z, one ? w.tps_c1 : w.tps_c4, one ? "pgbench -c 1" : "pgbench -c 4");
  r.extra = "worker peak RSS " + fixed(peak_rss_mib(w.worker.proc.pid()), 1) + " MiB";
  return r;
}

/// The same jobs through the floor (cluster/bench/floor.hpp): the worker's
/// own per-job code from plain threads of this process, no actors; the
/// threads are as many as the node's capacity (one for a single user).
row floor_drained(world& w, int users, int per_user) {
  auto b = write_jobs(w, "f", users, per_user, "select 1");
  auto& m = metrics::global();
  auto take = [&] {
    snapshot s;
    s.at = clock_type::now();
    s.cpu_s = cpu_seconds(::getpid());
    s.redis_cpu_s = cpu_seconds(w.redis_pid);
    s.pg_cpu_s = pg_cpu_seconds(w.postmaster_pid);
    s.redis_rt = m.redis_round_trips.load();
    s.pg_rt = m.postgres_round_trips.load();
    s.cmdstats = commandstats(w, &s.cmd_usec);
  s.connections = connections_received(w);
    return s;
  };
  auto a = take();
  w.own.clear();
  floor_config cfg;
  cfg.redis_port = w.redis->port();
  cfg.pg_port = static_cast<uint16_t>(w.opt.pg_port);
  cfg.threads = users == 1 ? 1 : 4;
  auto res = run_floor(cfg, b.users);
  auto z = take();
  require_all_done(w, b, "floor");
  bool one = users == 1;
  auto r = make_row(w, "floor " + std::to_string(users) + " users x " + std::to_string(per_user),
                    b.total, a, z, one ? w.tps_c1 : w.tps_c4, one ? "pgbench -c 1" : "pgbench -c 4");
  auto per_job = [&](int64_t us) { return fixed(static_cast<double>(us) / b.total, 0) + " us"; };
  r.extra = "the same per-job code on " + std::to_string(cfg.threads)
            + " plain thread(s) of the driver, no actors (its CPU is the driver's); wall per job "
              "and thread: turn script "
            + per_job(res.turn_us) + ", session taken " + per_job(res.take_us) + ", statement "
            + per_job(res.statement_us) + ", session given back " + per_job(res.give_us);
  if (res.jobs != b.total)
    fatal("floor: " + std::to_string(res.jobs) + " jobs run of " + std::to_string(b.total));
  return r;
}

row trickle(world& w) {
  auto& s = w.sz;
  ++w.seq;
  commands cmds;
  std::vector<std::string> users;
  for (int u = 1; u <= s.trickle_users; ++u) {
    users.push_back("t" + std::to_string(w.seq) + "u" + std::to_string(u));
    harness::add_user(cmds, users.back(), w.opt.pg_port);
  }
  auto c = w.batch();
  harness::run_commands(c, cmds);
  httplib::Client api{"127.0.0.1", w.api.http_port};
  api.set_keep_alive(true);
  int total = s.trickle_rate * s.trickle_seconds;
  batch_of_jobs b;
  b.users = users;
  auto a = before(w);
  auto period = std::chrono::microseconds{1000000 / s.trickle_rate};
  auto next = clock_type::now();
  for (int i = 0; i < total; ++i) {
    std::this_thread::sleep_until(next);
    next += period;
    auto& user = users[static_cast<size_t>(i) % users.size()];
    auto res = api.Post("/user/" + user + "/api/v2/sql/job?api_key=k" + user,
                        R"({"query": "select 1"})", "application/json");
    if (!res || res->status != 201)
      fatal("POST job: " + (res ? std::to_string(res->status) + " " + res->body
                                : std::string{"no answer"}));
    auto id = nlohmann::json::parse(res->body).at("job_id").get<std::string>();
    b.ids[user].push_back(id);
    ++b.total;
  }
  // Users who got no job (fewer jobs than users) are not waited for.
  b.users.erase(std::remove_if(b.users.begin(), b.users.end(),
                               [&](const std::string& u) { return b.ids[u].empty(); }),
                b.users.end());
  wait_final(w, b, 120);
  auto z = after(w);
  require_all_done(w, b, "trickle");
  std::vector<double> lat;
  for (auto& [id, st] : read_jobs(w, b))
    lat.push_back(ms_between(st.created_at, st.updated_at));
  auto r = make_row(w,
                    "trickle " + std::to_string(s.trickle_rate) + " jobs/s over "
                      + std::to_string(s.trickle_users) + " users (HTTP API)",
                    total, a, z, 0, "");
  r.extra = "created_at -> done p50 " + fixed(percentile(lat, 0.5), 1) + " ms, p99 "
            + fixed(percentile(lat, 0.99), 1) + " ms (Redis commands include the API's)";
  return r;
}

/// Whether a backend still runs job `id`'s statement.
bool statement_active(pqxx::connection& pg, const std::string& id) {
  pqxx::nontransaction tx{pg};
  auto r = tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                          "AND query LIKE $1",
                          "/* " + id + " */%pg_sleep%");
  return r[0][0].as<int>() > 0;
}

std::string cancel_latency(world& w) {
  auto& s = w.sz;
  pqxx::connection pg{w.pg_conninfo()};
  httplib::Client api{"127.0.0.1", w.api.http_port};
  std::vector<double> lat;
  for (int round = 0; round < s.cancel_rounds; ++round) {
    auto b = write_jobs(w, "c", s.cancel_jobs, 1, "select pg_sleep(10)");
    wake(w, b.users);
    for (auto& u : b.users) {
      auto id = b.ids[u].front();
      auto t0 = clock_type::now();
      while (!statement_active(pg, id)) {
        if (seconds_since(t0) > 30)
          fatal("job " + id + " did not start its pg_sleep within 30 s");
        std::this_thread::sleep_for(5ms);
      }
    }
    for (auto& u : b.users) {
      auto id = b.ids[u].front();
      auto t0 = clock_type::now();
      auto res = api.Delete("/user/" + u + "/api/v2/sql/job/" + id + "?api_key=k" + u);
      if (!res || res->status != 200)
        fatal("DELETE job: " + (res ? std::to_string(res->status) + " " + res->body
                                    : std::string{"no answer"}));
      while (statement_active(pg, id)) {
        if (seconds_since(t0) > 15)
          fatal("job " + id + " still runs 15 s after its cancel");
      }
      lat.push_back(seconds_since(t0) * 1000);
    }
    wait_final(w, b, 60);
  }
  return "cancel -> statement gone (" + std::to_string(lat.size()) + " running pg_sleep(10)): p50 "
         + fixed(percentile(lat, 0.5), 1) + " ms, p99 " + fixed(percentile(lat, 0.99), 1) + " ms";
}

std::string fairness(world& w) {
  auto& s = w.sz;
  auto heavy = write_jobs(w, "h", 1, s.heavy_jobs, "select 1");
  wake(w, heavy.users);
  // The heavy user is running (its first job done) before the others come.
  auto c = w.batch();
  auto first = redis::keys::job(heavy.ids.at(heavy.users.front()).front());
  auto t0 = clock_type::now();
  while (true) {
    auto r = c.command({"HGET", first, "status"});
    if (r && r->is_string() && final_status(r->str))
      break;
    if (seconds_since(t0) > 30)
      fatal("the heavy user's first job did not finish within 30 s");
    std::this_thread::sleep_for(1ms);
  }
  auto light = write_jobs(w, "l", s.light_users, 1, "select 1");
  auto woken = job::iso8601(std::chrono::system_clock::now());
  wake(w, light.users);
  wait_final(w, light, 120);
  std::string last_light;
  for (auto& [id, st] : read_jobs(w, light))
    last_light = std::max(last_light, st.updated_at);
  wait_final(w, heavy, 600);
  int ran = 0;
  for (auto& [id, st] : read_jobs(w, heavy))
    if (st.status == "done" && st.updated_at >= woken && st.updated_at <= last_light)
      ++ran;
  require_all_done(w, light, "fairness (light users)");
  require_all_done(w, heavy, "fairness (heavy user)");
  return "fairness: " + std::to_string(ran) + " of the heavy user's " + std::to_string(s.heavy_jobs)
         + " jobs finished while " + std::to_string(s.light_users)
         + " light users' single jobs waited (target < 60)";
}

/// One job keeping every row of an N-row result (SPEC §11), woken by PUBLISH,
/// until done; against `COPY (same query) TO STDOUT (FORMAT csv)` through psql
/// into /dev/null, in the same run.
std::string results_throughput(world& w) {
  auto n = std::to_string(w.sz.result_rows);
  auto sql = "select g, md5(g::text) as h, g * 1.5 as x from generate_series(1, " + n + ") g";
  auto copy_cmd = pg_client("psql") + " -X -q -h 127.0.0.1 -p " + std::to_string(w.opt.pg_port)
                  + " -U postgres -d postgres -c \"COPY (" + sql
                  + ") TO STDOUT (FORMAT csv)\" > /dev/null";
  auto t_copy = clock_type::now();
  if (std::system(copy_cmd.c_str()) != 0)
    fatal("psql COPY failed: " + copy_cmd);
  auto copy_s = seconds_since(t_copy);

  auto b = write_jobs(w, "r", 1, 1, sql);
  auto id = b.ids.at(b.users.front()).front();
  auto c = w.batch();
  if (auto r = c.command({"HSET", redis::keys::job(id), "results", "true"}); !r)
    fatal("HSET results: " + message_of(r.error()));
  auto a = before(w);
  auto t0 = clock_type::now();
  wake(w, b.users);
  wait_final(w, b, 600);
  auto took = seconds_since(t0);
  auto z = after(w);
  require_all_done(w, b, "results");
  auto meta = c.command({"HGET", redis::keys::job(id), "results:0"});
  auto doc = nlohmann::json::parse(meta && meta->is_string() ? meta->str : "{}", nullptr, false);
  auto rows = doc.is_object() ? doc.value("rows", int64_t{0}) : 0;
  auto bytes = doc.is_object() ? doc.value("bytes", int64_t{0}) : 0;
  c.command({"DEL", redis::keys::results(id)});
  auto mb = static_cast<double>(bytes) / 1e6;
  return "results: 1 job keeping " + std::to_string(rows) + " rows (" + fixed(mb, 1)
         + " MB stored) in " + fixed(took, 2) + " s = " + fixed(rows / took, 0) + " rows/s, "
         + fixed(mb / took, 1) + " MB/s; psql COPY of the same query to /dev/null "
         + fixed(copy_s, 2) + " s = " + fixed(w.sz.result_rows / copy_s, 0)
         + " rows/s; ratio " + fixed(copy_s / took, 3) + " of COPY; worker CPU "
         + fixed(z.cpu_s - a.cpu_s, 2) + " s";
}

int run(const options& opt) {
  world w;
  w.opt = opt;
  w.sz = sizes_for(opt.smoke);
  if (!opt.drained.empty()) {
    w.sz.drained.clear();
    for (auto& d : opt.drained) {
      auto x = d.find('x');
      int users = 0;
      int jobs = 0;
      try {
        users = x == std::string::npos ? 0 : std::stoi(d.substr(0, x));
        jobs = x == std::string::npos ? 0 : std::stoi(d.substr(x + 1));
      } catch (const std::exception&) {
      }
      if (users <= 0 || jobs <= 0)
        fatal("--drained wants USERSxJOBS (e.g. 1x20000), not " + d);
      w.sz.drained.emplace_back(users, jobs);
    }
  }
  w.dir = harness::make_run_dir("batchq-bench");
  auto rb = dev::find_redis_server();
  if (!rb)
    fatal(message_of(rb.error()));
  w.redis = std::make_unique<harness::redis_proc>(*rb, w.dir, false);
  w.redis->start();
  say("files in " + w.dir + (opt.smoke ? " (smoke sizes)" : ""));

  w.tps_c4 = pgbench_tps(w, 4);
  w.tps_c1 = pgbench_tps(w, 1);
  say("ceiling: pgbench `select 1` -c 4: " + fixed(w.tps_c4, 0) + " tps, -c 1: "
      + fixed(w.tps_c1, 0) + " tps (" + std::to_string(opt.pgbench_seconds) + " s each)");

  {
    auto c = w.redis->client(0);
    auto r = c.command({"INFO", "server"});
    if (r && r->is_string()) {
      auto p = r->str.find("process_id:");
      if (p != std::string::npos)
        w.redis_pid = static_cast<pid_t>(std::stol(r->str.substr(p + 11)));
    }
    pqxx::connection pg{w.pg_conninfo()};
    pqxx::nontransaction tx{pg};
    auto backend = static_cast<pid_t>(tx.exec("SELECT pg_backend_pid()")[0][0].as<long>());
    w.postmaster_pid = parent_of(backend);
  }

  start_node(w, w.worker, "worker");
  start_node(w, w.api, "api");
  {
    auto a = scrape(w.worker);
    auto b = scrape(w.worker);
    w.scrape_rt = metric(b, "batchq_redis_round_trips_total")
                  - metric(a, "batchq_redis_round_trips_total");
  }

  auto wanted = [&](const std::string& name) {
    if (opt.only.empty())
      return true;
    for (auto& o : opt.only)
      if (name.rfind(o, 0) == 0)
        return true;
    return false;
  };
  std::vector<std::string> lines;
  auto out = [&](std::string line) {
    say(line);
    lines.push_back(std::move(line));
  };
  // Each size through the node, then through the floor right after it, so
  // that the pair sees the same machine.
  for (auto [users, per_user] : w.sz.drained) {
    std::optional<row> node_row;
    if (wanted("drained")) {
      node_row = drained(w, users, per_user);
      out(render(*node_row));
    }
    if (wanted("floor")) {
      auto f = floor_drained(w, users, per_user);
      out(render(f));
      if (node_row && f.seconds > 0 && node_row->seconds > 0)
        out("node / floor, " + node_row->name + ": "
            + fixed(f.seconds / node_row->seconds, 2) + " of the floor's jobs/s, "
            + fixed(node_row->cpu_ms_per_job / std::max(f.cpu_ms_per_job, 1e-6), 1)
            + "x its CPU per job");
    }
  }
  if (wanted("trickle"))
    out(render(trickle(w)));
  if (wanted("cancel"))
    out(cancel_latency(w));
  if (wanted("fairness"))
    out(fairness(w));
  if (wanted("results"))
    out(results_throughput(w));

  stop_node(w.api);
  stop_node(w.worker);
  w.redis->stop();
  std::ofstream report{w.dir + "/report.txt"};
  report << "ceiling: pgbench -c 4 " << fixed(w.tps_c4, 0) << " tps, -c 1 " << fixed(w.tps_c1, 0)
         << " tps\n";
  for (auto& l : lines)
    report << l << "\n";
  say("report: " + w.dir + "/report.txt");
  if (!opt.keep) {
    std::string rm = "rm -rf '" + w.dir + "'";
    [[maybe_unused]] auto rc = std::system(rm.c_str());
  }
  return 0;
}

} // namespace
} // namespace batchq::bench

int main(int argc, char** argv) {
  batchq::bench::options opt;
  CLI::App app{"batchq-bench: throughput and latency of a batchq node against pgbench"};
  app.add_option("--batchq", opt.batchq, "the batchq binary")->required();
  app.add_option("--pg-port", opt.pg_port, "PostgreSQL port (default: $BATCHQ_TEST_PG_PORT)");
  app.add_flag("--smoke", opt.smoke, "tiny sizes: every scenario once, quickly");
  app.add_option("--pgbench-seconds", opt.pgbench_seconds, "duration of each pgbench run");
  app.add_option("--node-arg", opt.node_args, "an extra flag for both nodes (repeatable)");
  app.add_option("--only", opt.only, "scenarios: drained, floor, trickle, cancel, fairness, results (repeatable)");
  app.add_option("--drained", opt.drained,
                 "sizes of the drained and floor scenarios, USERSxJOBS (repeatable)");
  app.add_flag("--keep", opt.keep, "keep the run directory (node logs, report)");
  CLI11_PARSE(app, argc, argv);
  batchq::harness::set_tag("bench");
  opt.pg_port = batchq::harness::pg_port_or_env(opt.pg_port);
  if (opt.pg_port <= 0) {
    std::cerr << "batchq-bench: --pg-port or BATCHQ_TEST_PG_PORT is needed\n";
    return 2;
  }
  if (opt.smoke && opt.pgbench_seconds > 1)
    opt.pgbench_seconds = 1;
  return batchq::bench::run(opt);
}
