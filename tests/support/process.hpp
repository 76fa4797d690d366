// Child processes for the process-level test suites (tests/serve, tests/http,
// tests/client, tests/dev): bounded polling, temporary files, free loopback
// ports, and the real `batchq` binary (path from the BATCHQ_BINARY compile
// definition, which every includer must set) run as a child whose output goes
// to files. What a suite starts (its Redis DB, its node flags) stays in its
// own harness.
//
// Thread safety: none; one test thread.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/test_env.hpp"

extern char** environ;

namespace batchq::test {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

inline std::string batchq_binary() { return BATCHQ_BINARY; }

/// Polls `pred` every `every` until it holds or `timeout` runs out; whether
/// it held.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds every = 20ms) {
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(every);
  }
}

/// The whole file; "" when it cannot be read.
inline std::string read_text(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The last `max_lines` lines of `text`.
inline std::string tail(const std::string& text, size_t max_lines = 150) {
  size_t pos = text.size();
  size_t lines = 0;
  while (pos > 0 && lines <= max_lines) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
    ++lines;
  }
  return text.substr(pos);
}

/// A path in /tmp no other test uses: /tmp/<stem>_<random><ext>. Nothing is
/// created.
inline std::string temp_path(const std::string& stem, const std::string& ext = ".log") {
  return "/tmp/" + unique_name(stem) + ext;
}

/// A TCP port on 127.0.0.1 that nothing was bound to a moment ago; 0 and a
/// test failure when there is none. Picked at random *below* the kernel's
/// ephemeral range (net.ipv4.ip_local_port_range): a port from that range
/// (what bind(0) gives) can be taken as the local port of any outgoing
/// connection before the node binds it, which made a node fail with
/// "address in use" under load (320 long-poll connections beside it).
inline uint16_t free_port() {
  int low = 32768;
  {
    std::ifstream range{"/proc/sys/net/ipv4/ip_local_port_range"};
    int lo = 0;
    if (range >> lo && lo > 12000)
      low = lo;
  }
  thread_local std::mt19937 pick{std::random_device{}() ^ static_cast<unsigned>(::getpid())};
  std::uniform_int_distribution<int> in_range{10000, low - 1};
  auto try_bind = [](uint16_t port) -> uint16_t {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    socklen_t len = sizeof addr;
    uint16_t out = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0
        && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      out = ntohs(addr.sin_port);
    ::close(fd);
    return out;
  };
  for (int attempt = 0; attempt < 200; ++attempt)
    if (auto p = try_bind(static_cast<uint16_t>(in_range(pick))))
      return p;
  if (auto p = try_bind(0)) // the kernel's pick, as before
    return p;
  ADD_FAILURE() << "cannot find a free port: " << std::strerror(errno);
  return 0;
}

/// This process's environment ("NAME=value" entries) for a child that must
/// not see batchq's own settings: without every BATCHQ_* variable (the
/// BATCHQ_TEST_* server ports kept when `keep_test_servers`) and without
/// every variable that `set` names; then `set` added.
inline std::vector<std::string> environment_without_batchq(
  const std::map<std::string, std::string>& set, bool keep_test_servers) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry{*e};
    auto name = entry.substr(0, entry.find('='));
    bool batchq = name.rfind("BATCHQ_", 0) == 0
                  && !(keep_test_servers && name.rfind("BATCHQ_TEST_", 0) == 0);
    if (!batchq && set.count(name) == 0)
      env.push_back(std::move(entry));
  }
  for (const auto& [name, value] : set)
    env.push_back(name + "=" + value);
  return env;
}

/// Where a child's standard streams go, and its environment.
struct child_io {
  std::string out;              // stdout: this file, created or truncated
  std::string err;              // stderr: this file; "" = the same file as stdout
  std::string in = "/dev/null"; // stdin: this file
  std::optional<std::vector<std::string>> env; // "NAME=value"; nullopt: this process's
};

/// The status a shell would report for a waitpid() status: the exit code, or
/// 128 + the signal that killed the process.
inline int exit_status_of(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

/// One child process. Killed (SIGKILL) and reaped at destruction if it
/// still runs.
class child {
public:
  child() = default;
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }

  /// Starts `args` (args[0] = program path) once. False, and a test failure,
  /// when it cannot spawn.
  bool start(const std::vector<std::string>& args, const child_io& io) {
    io_ = io;
    std::vector<std::string> args_s = args;
    std::vector<std::string> env_s = io.env.value_or(std::vector<std::string>{});
    auto argv = pointers(args_s);
    auto envp = pointers(env_s);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, io.in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, io.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (io.err.empty())
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
    else
      posix_spawn_file_actions_addopen(&fa, 2, io.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                       0644);
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(),
                         io.env ? envp.data() : environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot start " << args[0] << ": " << std::strerror(rc);
      return false;
    }
    return true;
  }

  /// Starts `args` with stdout and stderr both going to `output_path`.
  bool start(const std::vector<std::string>& args, const std::string& output_path) {
    child_io io;
    io.out = output_path;
    return start(args, io);
  }

  /// The exit status (128 + signal when killed by one) once the process ended
  /// within `timeout`; nullopt while it still runs (or never started).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (exit_code_ || pid_ <= 0)
      return exit_code_;
    wait_until(
      [&] {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_)
          exit_code_ = exit_status_of(st);
        return exit_code_.has_value();
      },
      timeout, 10ms);
    return exit_code_;
  }

  bool running() { return pid_ > 0 && !wait_exit(0ms); }
  /// Sends `sig` unless the process ended (or never started).
  void signal(int sig) {
    if (pid_ > 0 && !exit_code_)
      ::kill(pid_, sig);
  }
  pid_t pid() const { return pid_; }
  /// The stdout file (with stderr when they share it), as far as written.
  std::string output() const { return read_text(io_.out); }
  const std::string& output_path() const { return io_.out; }
  /// The stderr file's text ("" when stderr goes to the stdout file).
  std::string error_output() const { return io_.err.empty() ? std::string{} : read_text(io_.err); }
  /// "" when stderr goes to the stdout file.
  const std::string& error_path() const { return io_.err; }

private:
  static std::vector<char*> pointers(std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v)
      p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  }

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  child_io io_;
};

/// What a command run to completion left.
struct run_result {
  std::optional<int> exit_code; // nullopt: still running at the timeout (then killed)
  std::string out;              // stdout (with stderr when merged)
  std::string err;              // stderr ("" when merged)
  std::chrono::milliseconds elapsed{0};
};

struct run_options {
  std::optional<std::string> stdin_text;       // nullopt: stdin is /dev/null
  bool merge_stderr = false;                   // stderr into `out`
  std::optional<std::vector<std::string>> env; // nullopt: this process's environment
  std::chrono::milliseconds timeout = 30s;     // then SIGKILLed
};

/// Runs `args` (args[0] = program path) to completion, bounded by
/// `opts.timeout`, its output in temporary files that are removed again.
inline run_result run_to_end(const std::vector<std::string>& args, const run_options& opts = {}) {
  run_result res;
  child_io io;
  io.out = temp_path("batchq_out");
  if (!opts.merge_stderr)
    io.err = temp_path("batchq_err");
  if (opts.stdin_text) {
    io.in = temp_path("batchq_in");
    std::ofstream{io.in} << *opts.stdin_text;
  }
  io.env = opts.env;
  auto t0 = clock::now();
  {
    child c;
    if (c.start(args, io)) {
      res.exit_code = c.wait_exit(opts.timeout);
      res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
    }
  } // killed here if still running
  res.out = read_text(io.out);
  std::remove(io.out.c_str());
  if (!io.err.empty()) {
    res.err = read_text(io.err);
    std::remove(io.err.c_str());
  }
  if (opts.stdin_text)
    std::remove(io.in.c_str());
  return res;
}

/// The end of a `batchq serve` node a test started (`id`: its node id):
/// SIGTERM if it still runs, and it must exit 0 within 30 s (a clean drain;
/// under ASan also no leak or memory error), else the test fails and it is
/// SIGKILLed. Then its output file is removed when the test passed, and its
/// last lines are printed when it failed.
inline void stop_serve_node(child& proc, const std::string& id) {
  if (proc.running()) {
    proc.signal(SIGTERM);
    auto code = proc.wait_exit(30s);
    if (!code) {
      ADD_FAILURE() << "node " << id << " did not exit within 30 s of SIGTERM";
      proc.signal(SIGKILL);
      proc.wait_exit(5s);
    } else if (*code != 0) {
      ADD_FAILURE() << "node " << id << " exited with status " << *code << " after SIGTERM";
    }
  }
  if (!::testing::Test::HasFailure())
    std::remove(proc.output_path().c_str());
  else
    std::cerr << "---- batchq serve " << id << " (" << proc.output_path() << "), last lines:\n"
              << tail(proc.output()) << "\n---- end of " << id << "\n";
}

} // namespace batchq::test
