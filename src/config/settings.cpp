#include "src/config/settings.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string_view>
#include <thread>

#include <unistd.h>

#include "messages/error.hpp"

namespace batchq {

size_t default_scheduler_threads() {
  auto cores = std::thread::hardware_concurrency();
  return std::max<size_t>(1, cores / 2);
}

config::config() {
  on_node_loss_ = "fail";
  // CAF's work-stealing workers poll 100 times, then 500 times with a 50 us
  // sleep (25 ms of ~20,000 wake-ups a second per worker) before they wait
  // on their condition variable, which an enqueue from outside notifies. A
  // node that gets a message every few milliseconds never leaves the 50 us
  // stage: 17 ms of CPU per job at 20 jobs/s (batchq-bench --only trickle;
  // perf: do_nanosleep and context switches). One moderate attempt: 3-4 ms
  // per job at the same latency (docs/performance.md). A file or flag may
  // still set it.
  set("work-stealing.moderate-poll-attempts", size_t{1});
  // A worker with nothing to do then waits on its condition variable, woken
  // by every enqueue from outside (timers, detached actors, the middleman)
  // and, by CAF's default, every 10 ms to look for work to steal: 400
  // context switches and 4-4.5 ms of CPU a second on an idle node. Every
  // actor on the pool only computes, so nothing needs stealing that soon:
  // 1 s brings an idle node to 12 switches and 0.6 ms a second, drained
  // throughput unchanged (docs/performance.md).
  set("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::seconds{1}});
  // CAF starts max(cores, 4) workers: 4 on a 2-core machine, each spinning
  // 100 times after its last message, beside Redis and PostgreSQL on the
  // same cores. The pool only runs actors that compute (every blocking call
  // is on a detached actor's thread), so half the cores is plenty: on 2 cores
  // one worker, 10-15 % less worker CPU per job in the drained scenarios at
  // the same throughput (docs/performance.md "CAF's workers"). A file or
  // flag may still set it.
  set("scheduler.max-threads", default_scheduler_threads());
  opt_group{custom_options_, "redis"}
    .add(raw_.redis_host, "host", "Redis server host")
    .add(redis_port_, "port", "Redis server port")
    .add(raw_.redis_db, "db", "Redis database of the batch keys (CARTO uses 5)");
  opt_group{custom_options_, "http"}
    .add(raw_.http_bind, "bind", "address the HTTP API listens on")
    .add(http_port_, "port", "port the HTTP API listens on; 0 picks a free one");
  opt_group{custom_options_, "api"}
    .add(raw_.api_max_payload, "max-payload", "largest accepted request body, bytes")
    .add(raw_.api_user_from_host, "user-from-host",
         "regex whose first group is the user, applied to the Host header")
    .add(raw_.api_allow_regular_keys, "allow-regular-keys",
         "accept regular API keys with grants_sql for the job routes");
  opt_group{custom_options_, "batch"}
    .add(raw_.batch_max_queued_jobs, "max-queued-jobs", "queued jobs per user")
    .add(raw_.batch_capacity, "capacity",
         "concurrent statements per database host, cluster-wide")
    .add(raw_.batch_max_running, "max-running",
         "jobs this node runs at once (each holds a user lease and a runner thread)")
    .add(raw_.batch_query_timeout, "query-timeout", "default statement timeout, ms")
    .add(raw_.batch_finished_jobs_ttl, "finished-jobs-ttl", "seconds a final job is kept")
    .add(raw_.batch_lease_ttl, "lease-ttl", "user lease, ms")
    .add(raw_.batch_rescan_interval, "rescan-interval", "seconds between re-reads of the queue index")
    .add(raw_.batch_sweep_interval, "sweep-interval", "seconds between orphan sweeps of work in progress")
    .add(on_node_loss_, "on-node-loss", "fail or requeue: what a lost node's running job becomes")
    .add(raw_.batch_shutdown_grace, "shutdown-grace", "seconds running jobs get on SIGTERM")
    .add(raw_.batch_turn_slice, "turn-slice",
         "ms after its start a user's turn may still go on to the user's next job while "
         "others wait for the same database (0: one job)");
  opt_group{custom_options_, "cluster"}
    .add(raw_.cluster_node_id, "node-id", "this node's id (default: host name + pid)")
    .add(cluster_port_, "port", "CAF middleman port; 0 picks a free one")
    .add(raw_.cluster_bind, "bind", "address the CAF middleman listens on")
    .add(raw_.cluster_advertise, "advertise",
         "address other nodes reach this node at (default: cluster.bind; required when "
         "bind is 0.0.0.0 or ::)")
    .add(raw_.cluster_secret, "secret",
         "shared secret every message between nodes proves (or env BATCHQ_CLUSTER_SECRET); "
         "without one, cluster.bind must be a loopback address");
  opt_group{custom_options_, "postgres"}
    .add(postgres_port_, "port", "PostgreSQL port when rails:users has no database_port")
    .add(raw_.postgres_result_grace, "result-grace",
         "ms a statement may outlive its timeout before batchq cancels it; as long again "
         "without an answer and the connection is given up");
  opt_group{custom_options_, "results"}
    .add(raw_.results_max_bytes, "max-bytes", "bytes of kept rows a job keeps at most")
    .add(raw_.results_page_rows, "page-rows", "rows of a results page when no limit is given");
  opt_group{custom_options_, "log"}
    .add(raw_.log_format, "format", "text or json")
    .add(raw_.log_level, "level", "debug, info, warning or error");
}

namespace {

bool is_batchq_section(caf::string_view s) {
  for (const char* mine : {"redis", "http", "api", "batch", "cluster", "postgres", "results", "log"})
    if (std::string_view{s.data(), s.size()} == mine)
      return true;
  return false;
}

caf::error bad(const std::string& key, const std::string& what) {
  return make_error(ec::invalid_config, key + ": " + what);
}

caf::error check_port(const char* key, int64_t v, bool zero_ok, uint16_t& out) {
  if (v < (zero_ok ? 0 : 1) || v > 65535)
    return bad(key, "must be a port number (" + std::string{zero_ok ? "0" : "1"} +
                      "-65535), got " + std::to_string(v));
  out = static_cast<uint16_t>(v);
  return caf::none;
}

} // namespace

caf::expected<settings> config::validate() const {
  settings s = raw_;
  if (auto e = check_port("redis.port", redis_port_, false, s.redis_port))
    return e;
  if (auto e = check_port("http.port", http_port_, true, s.http_port))
    return e;
  if (auto e = check_port("cluster.port", cluster_port_, true, s.cluster_port))
    return e;
  if (auto e = check_port("postgres.port", postgres_port_, false, s.postgres_port))
    return e;
  if (s.redis_db < 0 || s.redis_db > 15)
    return bad("redis.db", "must be 0-15, got " + std::to_string(s.redis_db));
  struct positive { const char* key; int64_t v; };
  for (auto [key, v] : {positive{"api.max-payload", s.api_max_payload},
                        positive{"batch.max-queued-jobs", s.batch_max_queued_jobs},
                        positive{"batch.capacity", s.batch_capacity},
                        positive{"batch.max-running", s.batch_max_running},
                        positive{"batch.query-timeout", s.batch_query_timeout},
                        positive{"batch.finished-jobs-ttl", s.batch_finished_jobs_ttl},
                        positive{"batch.lease-ttl", s.batch_lease_ttl},
                        positive{"batch.rescan-interval", s.batch_rescan_interval},
                        positive{"batch.sweep-interval", s.batch_sweep_interval},
                        positive{"postgres.result-grace", s.postgres_result_grace},
                        positive{"results.max-bytes", s.results_max_bytes},
                        positive{"results.page-rows", s.results_page_rows}})
    if (v <= 0)
      return bad(key, "must be greater than 0, got " + std::to_string(v));
  if (s.results_page_rows > 10000)
    return bad("results.page-rows", "must be at most 10000 (the largest limit), got "
                                      + std::to_string(s.results_page_rows));
  if (s.batch_shutdown_grace < 0)
    return bad("batch.shutdown-grace", "must be 0 or more, got " +
                                         std::to_string(s.batch_shutdown_grace));
  if (s.batch_turn_slice < 0 || s.batch_turn_slice > 60000)
    return bad("batch.turn-slice", "must be 0-60000 ms, got " +
                                     std::to_string(s.batch_turn_slice));
  if (on_node_loss_ == "fail")
    s.batch_on_node_loss = on_node_loss::fail;
  else if (on_node_loss_ == "requeue")
    s.batch_on_node_loss = on_node_loss::requeue;
  else
    return bad("batch.on-node-loss", "must be \"fail\" or \"requeue\", got \"" + on_node_loss_ + "\"");
  try {
    std::regex re{s.api_user_from_host};
    if (re.mark_count() < 1)
      return bad("api.user-from-host", "needs a capture group for the user");
  } catch (const std::regex_error& e) {
    return bad("api.user-from-host", std::string{"is not a valid regex: "} + e.what());
  }
  if (s.log_format != "text" && s.log_format != "json")
    return bad("log.format", "must be \"text\" or \"json\", got \"" + s.log_format + "\"");
  if (s.log_level != "debug" && s.log_level != "info" && s.log_level != "warning" &&
      s.log_level != "error")
    return bad("log.level", "must be debug, info, warning or error, got \"" + s.log_level + "\"");
  if (s.cluster_node_id.empty())
    s.cluster_node_id = default_node_id();
  if (s.cluster_secret.empty())
    if (const char* env = std::getenv("BATCHQ_CLUSTER_SECRET"))
      s.cluster_secret = env;
  if (s.cluster_bind.empty())
    return bad("cluster.bind", "must be an address, e.g. 127.0.0.1 or 0.0.0.0");
  bool any = s.cluster_bind == "0.0.0.0" || s.cluster_bind == "::";
  if (s.cluster_advertise.empty()) {
    if (any)
      return bad("cluster.advertise", "is required when cluster.bind is " + s.cluster_bind
                                        + ": other nodes need an address to reach this one");
    s.cluster_advertise = s.cluster_bind;
  }
  if (s.cluster_secret.empty() && !is_loopback(s.cluster_bind))
    return bad("cluster.secret", "is required when cluster.bind (" + s.cluster_bind
                                   + ") is not a loopback address: the middleman port is "
                                     "unauthenticated (set cluster.secret or "
                                     "BATCHQ_CLUSTER_SECRET)");
  return s;
}

std::vector<std::string> config::option_names() const {
  std::vector<std::string> out;
  for (const auto& opt : custom_options_)
    if (is_batchq_section(opt.category())) // not CAF's own scheduler.*, middleman.*, ...
      out.emplace_back(opt.full_name().begin(), opt.full_name().end());
  return out;
}

bool config::is_flag(const std::string& name) const {
  for (const auto& opt : custom_options_)
    if (is_batchq_section(opt.category()) && opt.is_flag()
        && std::string{opt.full_name().begin(), opt.full_name().end()} == name)
      return true;
  return false;
}

const char* to_string(on_node_loss x) {
  return x == on_node_loss::fail ? "fail" : "requeue";
}

bool is_loopback(const std::string& address) {
  return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

std::string default_node_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0)
    host[0] = '\0';
  return std::string{host[0] ? host : "node"} + "-" + std::to_string(getpid());
}

caf::expected<settings> load_config(config& cfg, const std::string& config_file,
                                    const std::vector<std::string>& flags) {
  for (const auto& f : flags)
    if (f.size() < 3 || f.compare(0, 2, "--") != 0)
      return make_error(ec::invalid_config, "unexpected argument '" + f
                                              + "' (configuration flags look like "
                                                "--section.key=value)");
  std::stringstream ini;
  if (!config_file.empty()) {
    std::ifstream in{config_file};
    if (!in)
      return make_error(ec::invalid_config, "cannot read config file '" + config_file + "'");
    ini << in.rdbuf();
  }
  // CAF's command line takes a boolean option only as a bare flag; every other
  // key is --section.key=value, so `--api.allow-regular-keys=true|false` is
  // accepted too: it goes after the file's text as INI, where the later value
  // wins (flag > file, as for any other key).
  std::vector<std::string> rest;
  for (const auto& f : flags) {
    auto eq = f.find('=');
    auto dot = f.find('.');
    if (eq != std::string::npos && dot != std::string::npos && dot < eq) {
      auto name = f.substr(2, eq - 2);
      auto value = f.substr(eq + 1);
      if ((value == "true" || value == "false") && cfg.is_flag(name)) {
        ini << "\n[" << name.substr(0, dot - 2) << "]\n" << name.substr(dot - 1) << '='
            << value << '\n';
        continue;
      }
    }
    rest.push_back(f);
  }
  if (auto err = cfg.parse(rest, ini)) {
    auto text = caf::actor_system_config::render(err);
    return make_error(ec::invalid_config, "bad configuration (" + text
                                            + "); flags must be --section.key=value with a known "
                                              "key, see --help");
  }
  return cfg.validate();
}

} // namespace batchq
