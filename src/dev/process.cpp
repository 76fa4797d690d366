#include "src/dev/process.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/error.hpp"

extern char** environ;

namespace batchq::dev {

namespace {

caf::error failure(const std::string& what) {
  return make_error(ec::invalid_config, what);
}

std::optional<os_user> lookup_user(const char* name) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(name, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    return std::nullopt;
  return os_user{name, pw.pw_uid, pw.pw_gid};
}

// What the child reports through the pipe when a step before or at execve
// fails: the step and errno. Names for the parent's message.
enum child_step : int { step_setpgid, step_fds, step_groups, step_gid, step_uid, step_pdeathsig,
                        step_chdir, step_exec };
const char* step_name(int step) {
  switch (step) {
    case step_setpgid: return "setpgid";
    case step_fds: return "redirecting stdin/stdout/stderr";
    case step_groups: return "setgroups";
    case step_gid: return "setgid";
    case step_uid: return "setuid";
    case step_pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case step_chdir: return "chdir";
    case step_exec: return "execve";
  }
  return "?";
}

} // namespace

caf::expected<std::optional<os_user>> unprivileged_user() {
  if (::geteuid() != 0)
    return std::optional<os_user>{};
  for (const char* name : {"postgres", "nobody"})
    if (auto u = lookup_user(name))
      return std::optional<os_user>{*u};
  return failure("batchq dev runs as root, and PostgreSQL refuses to run as root; neither the "
                 "OS user 'postgres' nor 'nobody' exists to run it as (create one, e.g. "
                 "`useradd --system postgres`, or run batchq dev as a normal user)");
}

std::string log_tail(const std::string& path, size_t max_lines) {
  std::ifstream in{path};
  if (!in)
    return {};
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  size_t pos = text.size();
  size_t lines = 0;
  while (pos > 0) {
    auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    if (++lines == max_lines) {
      pos = nl + 1;
      break;
    }
    pos = nl;
  }
  return text.substr(pos);
}

child_process::~child_process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

caf::error child_process::spawn(const spawn_options& opts) {
  if (opts.argv.empty())
    return failure("internal error: no program to start");
  if (pid_ > 0 && running())
    return failure("internal error: a child is already running");
  pid_ = -1;
  status_.reset();

  // Everything the child needs is prepared here: after fork it may only make
  // async-signal-safe calls (no allocation).
  std::vector<char*> argv;
  for (const auto& a : opts.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int log_fd = ::open(opts.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return failure("cannot open " + opts.log_path + ": " + std::strerror(errno));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2] = {-1, -1};
  if (null_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    auto err = failure(std::string{"cannot prepare a child process: "} + std::strerror(errno));
    ::close(log_fd);
    if (null_fd >= 0)
      ::close(null_fd);
    return err;
  }
  const pid_t parent = ::getpid();
  const bool as_other = opts.run_as.has_value();
  const uid_t uid = as_other ? opts.run_as->uid : 0;
  const gid_t gid = as_other ? opts.run_as->gid : 0;
  const char* cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
  const int death_sig = opts.parent_death_signal;

  pid_t pid = ::fork();
  if (pid < 0) {
    auto err = failure(std::string{"fork failed: "} + std::strerror(errno));
    ::close(log_fd);
    ::close(null_fd);
    ::close(report[0]);
    ::close(report[1]);
    return err;
  }
  if (pid == 0) {
    auto fail = [&](int step) {
      int msg[2] = {step, errno};
      [[maybe_unused]] auto n = ::write(report[1], msg, sizeof msg);
      ::_exit(127);
    };
    ::close(report[0]);
    if (::setpgid(0, 0) != 0)
      fail(step_setpgid);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP)
        ::sigaction(sig, &dfl, nullptr); // fails harmlessly for the RT signals glibc reserves
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0)
      fail(step_fds);
    if (as_other) {
      if (::setgroups(1, &gid) != 0)
        fail(step_groups);
      if (::setgid(gid) != 0)
        fail(step_gid);
      if (::setuid(uid) != 0)
        fail(step_uid);
    }
    // After the user change: changing credentials clears the death signal.
    if (::prctl(PR_SET_PDEATHSIG, death_sig) != 0)
      fail(step_pdeathsig);
    if (::getppid() != parent) // batchq died before prctl took effect
      ::_exit(1);
    if (cwd != nullptr && ::chdir(cwd) != 0)
      fail(step_chdir);
    ::execve(argv[0], argv.data(), environ);
    fail(step_exec);
  }

  ::close(report[1]);
  ::close(log_fd);
  ::close(null_fd);
  int msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof msg)) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    std::string who = as_other ? " as OS user '" + opts.run_as->name + "'" : "";
    return failure("cannot start " + opts.argv[0] + who + ": " + step_name(msg[0])
                   + " failed: " + std::strerror(msg[1]));
  }
  pid_ = pid;
  return caf::none;
}

std::optional<int> child_process::exit_status() {
  if (status_ || pid_ <= 0)
    return status_;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_)
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  else if (r < 0)
    status_ = 255; // not our child any more (ECHILD): treat as gone
  return status_;
}

bool child_process::running() {
  return pid_ > 0 && !exit_status();
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto st = exit_status(); st || pid_ <= 0)
      return st;
    if (std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

namespace {

/// Whether a process of group `pgid` still runs (zombies do not count: they
/// wait for their parent, maybe forever, and hold nothing).
bool group_alive(pid_t pgid) {
  DIR* d = ::opendir("/proc");
  if (d == nullptr)
    return false;
  bool alive = false;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    std::ifstream in{std::string{"/proc/"} + e->d_name + "/stat"};
    std::string line;
    if (!std::getline(in, line))
      continue;
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
    auto close = line.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest{line.substr(close + 1)};
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (rest >> state >> ppid >> pgrp && pgrp == pgid && state != 'Z') {
      alive = true;
      break;
    }
  }
  ::closedir(d);
  return alive;
}

} // namespace

std::optional<child_process::stop_result> child_process::stop(int sig,
                                                              std::chrono::milliseconds grace) {
  if (!running())
    return std::nullopt;
  ::kill(pid_, sig);
  std::optional<stop_result> out;
  if (auto st = wait(grace)) {
    out = stop_result{*st, false};
  } else {
    ::kill(pid_, SIGKILL);
    int ws = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &ws, 0);
    } while (r < 0 && errno == EINTR);
    status_ = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    out = stop_result{*status_, true};
  }
  // The child led its own process group: whatever it started and left
  // behind (initdb's bootstrap backend, say) goes too, and is gone when this
  // returns.
  ::kill(-pid_, SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  while (group_alive(pid_) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  return out;
}

std::string child_process::describe(int status) {
  if (status > 128)
    return "was killed by signal " + std::to_string(status - 128);
  return "exited with status " + std::to_string(status);
}

} // namespace batchq::dev
