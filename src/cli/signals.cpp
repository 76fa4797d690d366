#include "src/cli/signals.hpp"

#include <atomic>
#include <cerrno>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

namespace batchq::cli {

namespace {

int pipe_fds[2] = {-1, -1};
std::atomic<bool> active{false};

extern "C" void on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(pipe_fds[1], &b, 1); // non-blocking; a full pipe drops it
  errno = saved;
}

} // namespace

void ignore_sigpipe() {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGPIPE, &ign, nullptr);
}

bool signal_watcher::install() {
  bool expected = false;
  if (!active.compare_exchange_strong(expected, true))
    return false;
  if (::pipe(pipe_fds) != 0) {
    active = false;
    return false;
  }
  for (int fd : pipe_fds) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ignore_sigpipe();
  installed_ = true;
  return true;
}

signal_watcher::~signal_watcher() {
  if (!installed_)
    return;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGTERM, &dfl, nullptr);
  ::sigaction(SIGINT, &dfl, nullptr);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  pipe_fds[0] = pipe_fds[1] = -1;
  active = false;
}

std::optional<int> signal_watcher::wait(std::chrono::milliseconds timeout) {
  if (!installed_)
    return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() < 0)
      left = std::chrono::milliseconds{0};
    pollfd p{pipe_fds[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) {
      unsigned char b = 0;
      if (::read(pipe_fds[0], &b, 1) == 1)
        return static_cast<int>(b);
      continue;
    }
    if (r == 0)
      return std::nullopt;
    if (errno != EINTR)
      return std::nullopt;
  }
}

} // namespace batchq::cli
