// src/dev's building blocks without any server: finding the programs (in
// throw-away directories with fake executables), loopback ports, child
// processes (exit statuses, a bad path, the stop ladder, the log file), the
// temporary directory. Label `unit`; child processes are /bin/sh and
// /bin/true, waited for with bounds.
#include <chrono>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "messages/error.hpp"
#include "src/dev/binaries.hpp"
#include "src/dev/net.hpp"
#include "src/dev/process.hpp"
#include "src/dev/services.hpp"

using namespace batchq;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A scratch directory removed at the end of the test.
struct scratch {
  fs::path root;
  scratch() {
    std::string t = "/tmp/batchq-dev-test.XXXXXX";
    EXPECT_NE(::mkdtemp(t.data()), nullptr);
    root = t;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  /// Creates `rel` (and its parents) as a file with `mode`.
  std::string file(const std::string& rel, mode_t mode = 0755) {
    auto p = root / rel;
    fs::create_directories(p.parent_path());
    std::ofstream{p} << "#!/bin/sh\nexit 0\n";
    ::chmod(p.c_str(), mode);
    return p.string();
  }
  std::string dir(const std::string& rel) {
    auto p = root / rel;
    fs::create_directories(p);
    return p.string();
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

} // namespace

// -- finding the programs -----------------------------------------------------------

TEST(dev_binaries, RedisServerComesFromTheFirstPathDirectoryThatHasIt) {
  scratch s;
  auto first = s.file("a/redis-server");
  s.file("b/redis-server");
  auto path = s.dir("empty") + "::" + (s.root / "a").string() + ":" + (s.root / "b").string();
  auto found = dev::find_redis_server(std::nullopt, path);
  ASSERT_TRUE(found) << message_of(found.error());
  EXPECT_EQ(*found, first);
}

TEST(dev_binaries, ANonExecutableRedisServerOnPathIsSkipped) {
  scratch s;
  s.file("a/redis-server", 0644);
  auto good = s.file("b/redis-server");
  auto found = dev::find_redis_server(std::nullopt, (s.root / "a").string() + ":"
                                                      + (s.root / "b").string());
  ASSERT_TRUE(found) << message_of(found.error());
  EXPECT_EQ(*found, good);
}

TEST(dev_binaries, TheRedisOverrideWinsOverPath) {
  scratch s;
  auto mine = s.file("custom/my-redis");
  s.file("a/redis-server");
  auto found = dev::find_redis_server(mine, (s.root / "a").string());
  ASSERT_TRUE(found) << message_of(found.error());
  EXPECT_EQ(*found, mine);
}

TEST(dev_binaries, AMissingRedisServerNamesTheAptGetLine) {
  scratch s;
  auto none = dev::find_redis_server(std::nullopt, s.dir("empty"));
  ASSERT_FALSE(none);
  EXPECT_NE(message_of(none.error()).find("redis-server was not found"), std::string::npos);
  EXPECT_NE(message_of(none.error()).find("apt-get install -y redis-server"), std::string::npos);

  auto bad = dev::find_redis_server(std::string{"/nonexistent/redis"}, s.dir("empty"));
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("BATCHQ_REDIS_SERVER=/nonexistent/redis"),
            std::string::npos)
    << message_of(bad.error());
  EXPECT_NE(message_of(bad.error()).find("apt-get install -y redis-server"), std::string::npos);
}

TEST(dev_binaries, PostgresComesFromTheHighestDebianVersionThatHasBothPrograms) {
  scratch s;
  for (auto v : {"9.6", "13", "15"}) {
    s.file(std::string{"pg/"} + v + "/bin/initdb");
    s.file(std::string{"pg/"} + v + "/bin/postgres");
  }
  s.file("pg/16/bin/initdb"); // a client-only install: no server binary
  auto found = dev::find_postgres(std::nullopt, (s.root / "pg").string(), "");
  ASSERT_TRUE(found) << message_of(found.error());
  EXPECT_EQ(found->bindir, (s.root / "pg/15/bin").string());
  EXPECT_EQ(found->initdb, (s.root / "pg/15/bin/initdb").string());
  EXPECT_EQ(found->postgres, (s.root / "pg/15/bin/postgres").string());
}

TEST(dev_binaries, PostgresFallsBackToPathAndTheOverrideWins) {
  scratch s;
  s.file("usr/bin/initdb");
  s.file("usr/bin/postgres");
  auto on_path = dev::find_postgres(std::nullopt, (s.root / "nothing").string(),
                                    (s.root / "usr/bin").string());
  ASSERT_TRUE(on_path) << message_of(on_path.error());
  EXPECT_EQ(on_path->bindir, (s.root / "usr/bin").string());

  s.file("mine/initdb");
  s.file("mine/postgres");
  auto mine = dev::find_postgres((s.root / "mine").string(), (s.root / "nothing").string(),
                                 (s.root / "usr/bin").string());
  ASSERT_TRUE(mine) << message_of(mine.error());
  EXPECT_EQ(mine->bindir, (s.root / "mine").string());
}

TEST(dev_binaries, MissingPostgresBinariesNameTheAptGetLine) {
  scratch s;
  auto none = dev::find_postgres(std::nullopt, (s.root / "nothing").string(), s.dir("empty"));
  ASSERT_FALSE(none);
  auto m = message_of(none.error());
  EXPECT_NE(m.find("PostgreSQL server binaries (initdb, postgres) were not found"),
            std::string::npos)
    << m;
  EXPECT_NE(m.find("apt-get install -y postgresql-15"), std::string::npos) << m;

  auto bad = dev::find_postgres((s.root / "nothing").string(), "/usr/lib/postgresql", "");
  ASSERT_FALSE(bad) << "an override that holds nothing must not fall back to other places";
  EXPECT_NE(message_of(bad.error()).find("BATCHQ_PG_BINDIR="), std::string::npos);
}

// -- ports --------------------------------------------------------------------------

TEST(dev_net, AFreeLoopbackPortCanBeListenedOnAndATakenOneCannot) {
  auto port = dev::free_loopback_port();
  ASSERT_TRUE(port) << message_of(port.error());
  EXPECT_GT(*port, 0);
  EXPECT_TRUE(dev::can_listen("127.0.0.1", *port));

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(*port);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  EXPECT_FALSE(dev::can_listen("127.0.0.1", *port));
  EXPECT_FALSE(dev::can_listen("0.0.0.0", *port)) << "a wildcard bind overlaps the listener";
  ::close(fd);
  EXPECT_TRUE(dev::can_listen("127.0.0.1", *port));
}

TEST(dev_net, AnUnresolvableHostCannotBeListenedOn) {
  EXPECT_FALSE(dev::can_listen("no-such-host.invalid", 8080));
}

// -- child processes ------------------------------------------------------------------

TEST(dev_process, AChildsExitStatusAndOutputAreSeen) {
  scratch s;
  auto log = (s.root / "out.log").string();
  dev::child_process p;
  dev::spawn_options o;
  o.argv = {"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; pwd; exit 3"};
  o.log_path = log;
  o.cwd = s.root.string();
  ASSERT_FALSE(p.spawn(o));
  EXPECT_GT(p.pid(), 0);
  auto st = p.wait(10s);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, 3);
  EXPECT_FALSE(p.running());
  auto text = read_file(log);
  EXPECT_NE(text.find("to-stdout"), std::string::npos) << text;
  EXPECT_NE(text.find("to-stderr"), std::string::npos) << text;
  EXPECT_NE(text.find(s.root.string()), std::string::npos) << "cwd not applied: " << text;
  EXPECT_EQ(dev::log_tail(log, 1), s.root.string());
  EXPECT_EQ(dev::child_process::describe(3), "exited with status 3");
}

TEST(dev_process, AProgramThatCannotBeExecutedIsAnErrorAtSpawn) {
  scratch s;
  dev::child_process p;
  dev::spawn_options o;
  o.argv = {"/nonexistent/program"};
  o.log_path = (s.root / "out.log").string();
  auto err = p.spawn(o);
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("cannot start /nonexistent/program"), std::string::npos)
    << message_of(err);
  EXPECT_NE(message_of(err).find("execve"), std::string::npos) << message_of(err);
  EXPECT_FALSE(p.running());
}

TEST(dev_process, ABadWorkingDirectoryIsAnErrorAtSpawn) {
  scratch s;
  dev::child_process p;
  dev::spawn_options o;
  o.argv = {"/bin/true"};
  o.log_path = (s.root / "out.log").string();
  o.cwd = (s.root / "missing").string();
  auto err = p.spawn(o);
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("chdir"), std::string::npos) << message_of(err);
}

TEST(dev_process, StopSendsTheSignalFirstAndKillsAChildThatIgnoresIt) {
  scratch s;
  auto log = (s.root / "out.log").string();
  dev::child_process polite;
  dev::spawn_options o;
  o.argv = {"/bin/sh", "-c", "echo up; exec sleep 30"};
  o.log_path = log;
  ASSERT_FALSE(polite.spawn(o));
  auto r = polite.stop(SIGTERM, 10s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->killed);
  EXPECT_EQ(r->status, 128 + SIGTERM);
  EXPECT_FALSE(polite.stop(SIGTERM, 10s)) << "stopping a stopped child is a no-op";

  dev::child_process stubborn;
  o.argv = {"/bin/sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 1; done"};
  ASSERT_FALSE(stubborn.spawn(o));
  // The trap must be in place before the signal, else sh dies of SIGTERM.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (read_file(log).find("trapped") == std::string::npos
         && std::chrono::steady_clock::now() < deadline)
    stubborn.wait(20ms);
  auto k = stubborn.stop(SIGTERM, 200ms);
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->killed);
  EXPECT_EQ(k->status, 128 + SIGKILL);
  EXPECT_EQ(dev::child_process::describe(k->status), "was killed by signal 9");
}

TEST(dev_process, AChildRunsInItsOwnProcessGroupWithNoSignalBlocked) {
  scratch s;
  auto log = (s.root / "out.log").string();
  // A caller that blocks SIGINT (as batchq dev does while it starts) must not
  // hand that mask to its servers.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  dev::child_process p;
  dev::spawn_options o;
  o.argv = {"/bin/sh", "-c",
            // `exec`: grep replaces the shell and reads its own mask. Reading
            // the shell's from a second process raced with dash, which blocks
            // every signal while it waits for a child.
            "echo pgid=$(cut -d' ' -f5 /proc/$$/stat); exec grep SigBlk /proc/self/status"};
  o.log_path = log;
  auto err = p.spawn(o);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_FALSE(err) << message_of(err);
  ASSERT_EQ(p.wait(10s), 0) << read_file(log);
  auto text = read_file(log);
  EXPECT_NE(text.find("pgid=" + std::to_string(p.pid()) + "\n"), std::string::npos)
    << "process group is not the child's own: " << text;
  EXPECT_NE(text.find("SigBlk:\t0000000000000000"), std::string::npos) << text;
}

TEST(dev_process, LogTailKeepsTheLastLines) {
  scratch s;
  auto path = (s.root / "x.log").string();
  std::ofstream{path} << "one\ntwo\nthree\nfour\n";
  EXPECT_EQ(dev::log_tail(path, 2), "three\nfour");
  EXPECT_EQ(dev::log_tail(path, 10), "one\ntwo\nthree\nfour");
  EXPECT_EQ(dev::log_tail((s.root / "missing").string()), "");
}

// -- the temporary directory ----------------------------------------------------------

TEST(dev_temp_dir, TheDirectoryIsPrivateAndRemovedWithItsContentUnlessKept) {
  std::string path;
  {
    dev::temp_dir d;
    ASSERT_FALSE(d.create(std::nullopt));
    path = d.path();
    EXPECT_EQ(path.rfind("/tmp/batchq-dev.", 0), 0u) << path;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    fs::create_directories(path + "/pg/base");
    std::ofstream{path + "/pg/base/f"} << "x";
  }
  EXPECT_FALSE(fs::exists(path)) << path;

  {
    dev::temp_dir d;
    ASSERT_FALSE(d.create(std::nullopt));
    path = d.path();
    d.keep();
  }
  EXPECT_TRUE(fs::exists(path));
  fs::remove_all(path);
}
