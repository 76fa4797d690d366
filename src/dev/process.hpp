// Child processes of `batchq dev` (SPEC §9, docs/dev-mode.md): the embedded
// redis-server, initdb and postgres. fork + execve of an argv vector (never a
// shell string); in the child, before execve:
//   - its own process group, so that Ctrl-C in the terminal reaches batchq
//     only and batchq decides the order of shutdown;
//   - optionally another OS user (setgroups/setgid/setuid; batchq is root and
//     initdb/postgres refuse to run as root);
//   - a parent-death signal (prctl PR_SET_PDEATHSIG, set after the user
//     change, which would clear it), so the child dies with batchq even when
//     batchq is killed with SIGKILL; Linux sends it when the *thread* that
//     forked ends, so spawn from the main thread;
//   - the default disposition and an empty mask for every signal (batchq
//     blocks SIGINT/SIGTERM while it starts; a blocked mask survives execve);
//   - stdin from /dev/null, stdout and stderr appended to a log file.
//
// Thread safety: a child_process is used by one thread. spawn() forks: the
// child makes only async-signal-safe calls, so forking while other threads
// run is safe, but see the note on the parent-death signal above.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/types.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace batchq::dev {

/// An OS account a child runs as.
struct os_user {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The account PostgreSQL runs as when batchq runs as root: `postgres` if it
/// exists, else `nobody`. nullopt when batchq is not root (then PostgreSQL
/// runs as batchq's own user). Errors (ec::invalid_config): root, and neither
/// account exists.
caf::expected<std::optional<os_user>> unprivileged_user();

/// The last `max_lines` lines of the file at `path` ("" when unreadable), for
/// error messages that show why a server did not start.
std::string log_tail(const std::string& path, size_t max_lines = 20);

struct spawn_options {
  /// argv[0] is the program's path (absolute; PATH is not searched).
  std::vector<std::string> argv;
  /// stdout and stderr are appended here (created 0644 when missing).
  std::string log_path;
  /// The child's working directory ("" = batchq's).
  std::string cwd;
  /// Run as this user (REQUIRES: batchq is root).
  std::optional<os_user> run_as;
  /// What the child receives when batchq's spawning thread ends.
  int parent_death_signal = SIGTERM;
};

/// One child process; a running one is killed (SIGKILL) and reaped when the
/// object is destroyed.
class child_process {
public:
  child_process() = default;
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Starts the program. Errors (ec::invalid_config, with the reason): the log
  /// file cannot be opened, fork fails, or execve fails in the child (reported
  /// through a close-on-exec pipe, so a bad path is an error here, not a
  /// mysterious exit later). REQUIRES: no child running in this object.
  caf::error spawn(const spawn_options& opts);

  /// The child's pid (-1 before spawn()).
  pid_t pid() const noexcept { return pid_; }

  /// Whether the child was spawned and has not been seen exiting.
  bool running();

  /// The exit status once the child ended (128 + N when killed by signal
  /// N); nullopt while it runs. Does not block.
  std::optional<int> exit_status();

  /// Blocks up to `timeout` for the child to end; its exit status, or
  /// nullopt when it still runs.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  /// Sends `sig` and waits up to `grace`; then SIGKILL and waits until it is
  /// gone; then SIGKILLs what is left of its process group (processes it
  /// started) and waits (at most 5 s) until none is left. Returns the exit
  /// status and whether SIGKILL was needed. No-op (nullopt) when nothing runs.
  struct stop_result {
    int status = 0;
    bool killed = false;
  };
  std::optional<stop_result> stop(int sig, std::chrono::milliseconds grace);

  /// "exited with status 1" / "was killed by signal 9", for messages.
  static std::string describe(int status);

private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

} // namespace batchq::dev
