// The real `batchq dev` process, from nothing (SPEC §9, docs/dev-mode.md): it
// starts its own redis-server and PostgreSQL cluster (no BATCHQ_TEST_* server
// is used: the variables are removed from its environment), prints a banner
// whose curl line this test RUNS through /bin/sh, and on SIGINT stops
// everything and removes its directory. Also: missing programs, a taken
// HTTP port, Ctrl-C while starting, --keep.
//
// Each test starts its own `batchq dev` on free ports, so tests may run in
// parallel. Every wait is bounded and polls.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_env.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using batchq::test::free_port;
using batchq::test::read_text;
using batchq::test::wait_until;

namespace {

/// Whether process `pid` exists (a zombie counts as gone: it runs nothing).
bool process_alive(pid_t pid) {
  auto stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty())
    return false;
  auto close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] != 'Z';
}

/// The pids of every process whose working directory is `dir` or below it
/// (redis-server and every PostgreSQL process work there).
std::vector<pid_t> processes_working_in(const std::string& dir) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec}, end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    char buf[4096];
    auto n = ::readlink((it->path() / "cwd").c_str(), buf, sizeof buf - 1);
    if (n <= 0)
      continue;
    std::string cwd{buf, static_cast<size_t>(n)};
    if (cwd == dir || cwd.rfind(dir + "/", 0) == 0 || cwd.rfind(dir + " (deleted)", 0) == 0)
      found.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return found;
}

/// Runs `command_line` with /bin/sh -c (popen); its stdout.
std::string shell(const std::string& command_line, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen(command_line.c_str(), "r");
  if (f == nullptr)
    return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  int st = ::pclose(f);
  if (status != nullptr)
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

/// `batchq dev <args>` with stdout and stderr in separate files and an
/// environment without any BATCHQ_* variable (so without the BATCHQ_TEST_*
/// servers), with `env_extra` set.
class dev_process {
public:
  dev_process(std::vector<std::string> args, std::map<std::string, std::string> env_extra = {}) {
    std::vector<std::string> argv{batchq::test::batchq_binary(), "dev"};
    argv.insert(argv.end(), args.begin(), args.end());
    batchq::test::child_io io;
    io.out = batchq::test::temp_path("batchq_dev_test", ".out");
    io.err = batchq::test::temp_path("batchq_dev_test", ".err");
    io.env = batchq::test::environment_without_batchq(env_extra, /*keep_test_servers=*/false);
    proc_.start(argv, io);
  }

  /// Stops it like Ctrl-C (SIGKILL after 30 s); shows its output when the
  /// test failed.
  ~dev_process() {
    if (running()) {
      signal(SIGINT);
      if (!wait_exit(30s)) {
        signal(SIGKILL);
        wait_exit(5s);
      }
    }
    if (::testing::Test::HasFailure())
      std::cerr << "---- batchq dev stdout:\n" << out() << "---- stderr:\n" << err() << "----\n";
    std::remove(proc_.output_path().c_str());
    std::remove(proc_.error_path().c_str());
  }

  std::string out() const { return proc_.output(); }
  std::string err() const { return proc_.error_output(); }
  void signal(int sig) { proc_.signal(sig); }
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    return proc_.wait_exit(timeout);
  }
  bool running() { return proc_.running(); }

  /// Waits for the banner's last line; false when it exited or took too long.
  bool wait_banner(std::chrono::milliseconds timeout = 60s) {
    return wait_until(
             [&] { return !running() || out().find("Press Ctrl-C to stop") != std::string::npos; },
             timeout)
           && running();
  }

  /// The first stdout line starting with `prefix` and containing `needle`.
  std::string line(const std::string& prefix, const std::string& needle = "") const {
    std::istringstream in{out()};
    for (std::string l; std::getline(in, l);)
      if (l.rfind(prefix, 0) == 0 && l.find(needle) != std::string::npos)
        return l;
    return {};
  }

  /// The temporary directory the banner names.
  std::string dir() const {
    std::smatch m;
    auto text = out();
    static const std::regex re{R"(/tmp/batchq-dev\.[A-Za-z0-9]+)"};
    return std::regex_search(text, m, re) ? m.str() : std::string{};
  }

  /// The pid logged by the `<event>` line ("redis started ... pid=N").
  pid_t logged_pid(const std::string& event) const {
    std::smatch m;
    auto text = err();
    std::regex re{event + R"( .*pid=(\d+))"};
    return std::regex_search(text, m, re) ? static_cast<pid_t>(std::stol(m[1].str())) : -1;
  }

private:
  batchq::test::child proc_;
};

/// What a stopped `batchq dev` must have left: nothing.
void expect_nothing_left(const std::string& dir, const std::vector<pid_t>& servers) {
  ASSERT_FALSE(dir.empty());
  EXPECT_FALSE(fs::exists(dir)) << dir << " still exists";
  for (auto pid : servers) {
    EXPECT_GT(pid, 0) << "a server pid was not logged";
    if (pid > 0) {
      EXPECT_FALSE(process_alive(pid)) << "server process " << pid << " still runs";
    }
  }
  auto left = processes_working_in(dir);
  EXPECT_TRUE(left.empty()) << left.size() << " process(es) still work in " << dir
                            << ", e.g. pid " << (left.empty() ? 0 : left[0]);
}

} // namespace

TEST(batchq_dev, ThePrintedCurlLineSubmitsAJobThatRunsToDoneAndCtrlCRemovesEverything) {
  auto port = free_port();
  dev_process dev{{"--http.port=" + std::to_string(port)}};
  ASSERT_TRUE(dev.wait_banner()) << "no banner";
  auto dir = dev.dir();
  ASSERT_FALSE(dir.empty());
  auto redis_pid = dev.logged_pid("redis started");
  auto pg_pid = dev.logged_pid("postgres started");

  auto post = dev.line("curl ", "-X POST");
  ASSERT_FALSE(post.empty()) << "no curl POST line";
  EXPECT_NE(post.find("http://127.0.0.1:" + std::to_string(port) + "/user/demo/api/v2/sql/job"),
            std::string::npos)
    << post;
  int sh_status = -1;
  auto answer = shell(post, &sh_status);
  ASSERT_EQ(sh_status, 0) << "the printed line failed: " << post << "\n" << answer;
  auto created = nlohmann::json::parse(answer, nullptr, false);
  ASSERT_TRUE(created.is_object()) << answer;
  ASSERT_TRUE(created.contains("job_id")) << answer;
  auto job_id = created["job_id"].get<std::string>();
  EXPECT_EQ(created.value("user", ""), "demo") << answer;

  auto get = dev.line("curl ", "/JOB_ID");
  ASSERT_FALSE(get.empty()) << "no curl GET line";
  ASSERT_EQ(get.find("-X "), std::string::npos) << "the first JOB_ID line should be the GET: "
                                                << get;
  get.replace(get.find("JOB_ID"), 6, job_id);
  std::string last;
  bool done = wait_until(
    [&] {
      last = shell(get);
      auto j = nlohmann::json::parse(last, nullptr, false);
      return j.is_object() && j.value("status", "") == "done";
    },
    30s, 100ms);
  EXPECT_TRUE(done) << "job " << job_id << " did not reach done; last answer: " << last;

  dev.signal(SIGINT);
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code) << "batchq dev did not exit within 30 s of SIGINT";
  EXPECT_EQ(*code, 0);
  expect_nothing_left(dir, {redis_pid, pg_pid});
}

TEST(batchq_dev, ThePrintedPsqlLineReachesTheDemoDatabaseAndCtrlCStopsBothServers) {
  dev_process dev{{"--http.port=" + std::to_string(free_port())}};
  ASSERT_TRUE(dev.wait_banner()) << "no banner";
  auto dir = dev.dir();
  auto redis_pid = dev.logged_pid("redis started");
  auto pg_pid = dev.logged_pid("postgres started");
  EXPECT_TRUE(process_alive(redis_pid));
  EXPECT_TRUE(process_alive(pg_pid));
  EXPECT_FALSE(processes_working_in(dir).empty()) << "the servers do not work in " << dir;

  auto psql = dev.line("psql ");
  ASSERT_FALSE(psql.empty()) << "no psql line";
  int st = -1;
  auto who = shell(psql + " -Atc 'SELECT current_user || $$@$$ || current_database()'", &st);
  EXPECT_EQ(st, 0) << psql;
  EXPECT_EQ(who, "batchq_demo@batchq_demo\n");

  dev.signal(SIGINT);
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code) << "batchq dev did not exit within 30 s of SIGINT";
  EXPECT_EQ(*code, 0);
  expect_nothing_left(dir, {redis_pid, pg_pid});
  EXPECT_NE(dev.err().find("dev directory removed"), std::string::npos);
}

TEST(batchq_dev, SigtermStopsItLikeCtrlC) {
  dev_process dev{{"--http.port=" + std::to_string(free_port())}};
  ASSERT_TRUE(dev.wait_banner()) << "no banner";
  auto dir = dev.dir();
  auto pids = std::vector<pid_t>{dev.logged_pid("redis started"), dev.logged_pid("postgres started")};
  dev.signal(SIGTERM);
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  expect_nothing_left(dir, pids);
}

TEST(batchq_dev, CtrlCWhileStartingLeavesNothingBehind) {
  dev_process dev{{"--http.port=" + std::to_string(free_port())}};
  // The directory exists and redis-server is starting: interrupt now.
  ASSERT_TRUE(wait_until([&] { return dev.err().find("redis started") != std::string::npos
                                      || !dev.running(); },
                         30s));
  std::smatch m;
  auto err = dev.err();
  std::regex re{R"(dir=(/tmp/batchq-dev\.[A-Za-z0-9]+))"};
  ASSERT_TRUE(std::regex_search(err, m, re)) << err;
  auto dir = m[1].str();
  dev.signal(SIGINT);
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code);
  // Exit 1 when the start was cut short; 0 if the node was already serving.
  EXPECT_TRUE(*code == 0 || *code == 1) << *code;
  expect_nothing_left(dir, {dev.logged_pid("redis started")});
}

TEST(batchq_dev, KeepLeavesTheDirectoryWithTheServerLogsButStopsTheServers) {
  dev_process dev{{"--http.port=" + std::to_string(free_port()), "--keep"}};
  ASSERT_TRUE(dev.wait_banner()) << "no banner";
  auto dir = dev.dir();
  ASSERT_FALSE(dir.empty());
  auto pids = std::vector<pid_t>{dev.logged_pid("redis started"), dev.logged_pid("postgres started")};
  dev.signal(SIGINT);
  ASSERT_EQ(dev.wait_exit(30s), 0);
  EXPECT_TRUE(fs::exists(dir + "/redis.log"));
  EXPECT_TRUE(fs::exists(dir + "/postgres.log"));
  EXPECT_TRUE(fs::exists(dir + "/pg/PG_VERSION"));
  for (auto pid : pids)
    EXPECT_FALSE(process_alive(pid)) << pid;
  EXPECT_TRUE(processes_working_in(dir).empty());
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(batchq_dev, AGivenRedisIsUsedInsteadOfAnEmbeddedOneAndTheDemoUserLeavesItOnExit) {
  // The Redis of scripts/test; batch keys in DB 10 (no other suite uses it).
  auto redis_port = batchq::test::redis_port();
  ASSERT_GT(redis_port, 0);
  batchq::redis::client meta{
    batchq::redis::endpoint{"127.0.0.1", static_cast<uint16_t>(redis_port), 5}};
  dev_process dev{{"--http.port=" + std::to_string(free_port()),
                   "--redis.port=" + std::to_string(redis_port), "--redis.db=10"}};
  ASSERT_TRUE(dev.wait_banner()) << "no banner";
  EXPECT_EQ(dev.err().find("redis started"), std::string::npos) << "a Redis was embedded anyway";
  EXPECT_NE(dev.out().find("127.0.0.1:" + std::to_string(redis_port) + ", DB 10"),
            std::string::npos)
    << dev.out();
  std::smatch m;
  auto err = dev.err();
  ASSERT_TRUE(std::regex_search(err, m, std::regex{R"(postgres started .*port=(\d+))"})) << err;
  auto user = meta.command({"HGET", batchq::redis::keys::rails_user("demo"), "database_port"});
  ASSERT_TRUE(user);
  EXPECT_EQ(user->str, m[1].str()) << "rails:users:demo does not point at the embedded cluster";

  dev.signal(SIGINT);
  ASSERT_EQ(dev.wait_exit(30s), 0);
  auto gone = meta.command({"EXISTS", batchq::redis::keys::rails_user("demo")});
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->integer, 0) << "the demo user was left in a Redis that is not batchq dev's";
}

TEST(batchq_dev, AMissingRedisServerExitsOneWithTheAptGetLine) {
  dev_process dev{{"--http.port=" + std::to_string(free_port())},
                  {{"BATCHQ_REDIS_SERVER", "/nonexistent/redis-server"}}};
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1);
  auto err = dev.err();
  EXPECT_NE(err.find("batchq dev: redis-server was not found"), std::string::npos) << err;
  EXPECT_NE(err.find("apt-get install -y redis-server"), std::string::npos) << err;
  EXPECT_EQ(err.find("/tmp/batchq-dev."), std::string::npos) << "nothing should be created";
}

TEST(batchq_dev, RedisServerMissingFromPathExitsOneWithTheAptGetLine) {
  // A PATH with the basic tools but no redis-server.
  fs::path bin = "/tmp/batchq-dev-test-path-" + std::to_string(::getpid());
  fs::create_directories(bin);
  dev_process dev{{"--http.port=" + std::to_string(free_port())}, {{"PATH", bin.string()}}};
  auto code = dev.wait_exit(30s);
  fs::remove_all(bin);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1);
  EXPECT_NE(dev.err().find("apt-get install -y redis-server"), std::string::npos) << dev.err();
}

TEST(batchq_dev, MissingPostgresBinariesExitOneWithTheAptGetLine) {
  dev_process dev{{"--http.port=" + std::to_string(free_port())},
                  {{"BATCHQ_PG_BINDIR", "/nonexistent/bin"}}};
  auto code = dev.wait_exit(30s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1);
  auto err = dev.err();
  EXPECT_NE(err.find("PostgreSQL server binaries (initdb, postgres) were not found"),
            std::string::npos)
    << err;
  EXPECT_NE(err.find("apt-get install -y postgresql-15"), std::string::npos) << err;
}

TEST(batchq_dev, ATakenHttpPortExitsOneAndSaysWhichFlagToPass) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto port = std::to_string(ntohs(addr.sin_port));
  dev_process dev{{"--http.port=" + port}};
  auto code = dev.wait_exit(30s);
  ::close(fd);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1);
  EXPECT_NE(dev.err().find("127.0.0.1:" + port), std::string::npos) << dev.err();
  EXPECT_NE(dev.err().find("--http.port=N"), std::string::npos) << dev.err();
}

TEST(batchq_dev, BadConfigurationExitsTwoAndHelpExplainsTheCommand) {
  dev_process bad{{"--batch.capacity=0"}};
  ASSERT_EQ(bad.wait_exit(30s), 2);
  EXPECT_NE(bad.err().find("batch.capacity: must be greater than 0, got 0"), std::string::npos)
    << bad.err();

  dev_process help{{"--help"}};
  ASSERT_EQ(help.wait_exit(30s), 0);
  auto text = help.out();
  for (auto word : {"--keep", "--http.port", "redis-server", "Ctrl-C", "--redis.host"})
    EXPECT_NE(text.find(word), std::string::npos) << word << " missing from:\n" << text;
}
