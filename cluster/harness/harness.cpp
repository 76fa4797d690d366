#include "cluster/harness/harness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include "messages/error.hpp"
#include "src/dev/net.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

namespace batchq::harness {

using namespace std::chrono_literals;

namespace {
std::string tag = "harness";
} // namespace

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string fixed(double x, int digits) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(digits);
  out << x;
  return out.str();
}

void set_tag(std::string t) {
  tag = std::move(t);
}

void say(const std::string& line) {
  std::cout << "[" << tag << "] " << line << std::endl;
}

void fatal(const std::string& what) {
  std::cerr << "[" << tag << "] error: " << what << std::endl;
  std::exit(2);
}

redis_proc::redis_proc(std::string binary, std::string dir, bool aof)
  : binary_(std::move(binary)), dir_(std::move(dir)), aof_(aof) {
  auto p = dev::free_loopback_port();
  if (!p)
    fatal("no free port for redis-server");
  port_ = *p;
}

void redis_proc::start() {
  dev::spawn_options o;
  o.argv = {binary_, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--dir", dir_,
            "--save", ""};
  if (aof_) {
    o.argv.insert(o.argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    o.argv.insert(o.argv.end(), {"--appendonly", "no"});
  }
  o.log_path = dir_ + "/redis.log";
  proc_ = std::make_unique<dev::child_process>();
  if (auto err = proc_->spawn(o))
    fatal("redis-server: " + message_of(err));
  auto t0 = clock_type::now();
  while (seconds_since(t0) < 15) {
    auto c = client(0);
    auto r = c.command({"PING"});
    if (r && r->str == "PONG")
      return;
    std::this_thread::sleep_for(20ms);
  }
  fatal("redis-server did not answer: " + dev::log_tail(o.log_path));
}

void redis_proc::kill9() {
  ::kill(proc_->pid(), SIGKILL);
  proc_->wait(5s);
}

void redis_proc::stop() {
  if (proc_)
    proc_->stop(SIGTERM, 5s);
}

redis::client redis_proc::client(int db) const {
  return redis::client{redis::endpoint{"127.0.0.1", port_, db}};
}

caf::expected<std::vector<redis::reply>> pipeline_batched(redis::client& c, const commands& cmds,
                                                          size_t batch) {
  std::vector<redis::reply> out;
  out.reserve(cmds.size());
  for (size_t i = 0; i < cmds.size(); i += batch) {
    commands part(cmds.begin() + static_cast<long>(i),
                  cmds.begin() + static_cast<long>(std::min(cmds.size(), i + batch)));
    auto r = c.pipeline(part);
    if (!r)
      return std::move(r.error());
    for (auto& x : *r)
      out.push_back(std::move(x));
  }
  return out;
}

void run_commands(redis::client& c, const commands& cmds, size_t batch) {
  if (auto r = pipeline_batched(c, cmds, batch); !r)
    fatal("writing to Redis: " + message_of(r.error()));
}

int pg_port_or_env(int given) {
  if (given > 0)
    return given;
  const char* p = std::getenv("BATCHQ_TEST_PG_PORT");
  return p != nullptr ? std::atoi(p) : 0;
}

void add_user(commands& cmds, const std::string& user, int pg_port) {
  auto token = "k" + user;
  cmds.push_back({"HSET", redis::keys::rails_user(user), "id", "1", "database_host", "127.0.0.1",
                  "database_name", "postgres", "database_port", std::to_string(pg_port),
                  "map_key", token});
  cmds.push_back({"HSET", redis::keys::api_key(user, token), "user", user, "type", "master",
                  "grants_sql", "true", "database_role", "postgres", "database_password", ""});
}

void add_job(commands& cmds, const std::string& user, const std::string& id,
             const std::string& sql, int pg_port) {
  auto now = redis::iso8601_now();
  cmds.push_back({"HSET", redis::keys::job(id), "user", user, "status", "pending", "query", sql,
                  "created_at", now, "updated_at", now, "host", "127.0.0.1", "port",
                  std::to_string(pg_port), "dbname", "postgres", "dbuser", "postgres"});
  cmds.push_back({"LPUSH", redis::keys::queue(user), id});
  cmds.push_back({"SADD", std::string{redis::keys::queue_index}, user});
}

std::string make_run_dir(const std::string& prefix) {
  auto dir = "/tmp/" + prefix + "-" + std::to_string(::getpid());
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    fatal("mkdir " + dir + ": " + std::strerror(errno));
  return dir;
}

} // namespace batchq::harness
