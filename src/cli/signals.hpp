// SIGTERM/SIGINT for `batchq serve` (SPEC §7): the signal handler only writes
// the signal number to a self-pipe; the serve main thread waits on the pipe
// (with a timeout, which drives the node heartbeat) and does the drain itself,
// outside signal context. Also ignores SIGPIPE process-wide: libpq's cancel
// and hiredis write to sockets the peer may have closed.
//
// One signal_watcher per process (install() refuses a second one). wait() is
// called by one thread; the handler is async-signal-safe (write(2) only).
#pragma once

#include <chrono>
#include <optional>

namespace batchq::cli {

/// SIGPIPE ignored process-wide (a write to a closed socket fails with EPIPE).
void ignore_sigpipe();

class signal_watcher {
public:
  /// Installs the handlers. Returns false (and installs nothing) when another
  /// watcher is active or the pipe cannot be created.
  bool install();

  /// Restores the default handlers and closes the pipe.
  ~signal_watcher();

  /// Blocks up to `timeout` for SIGTERM/SIGINT; returns the signal number,
  /// or nullopt when the timeout ran out first.
  std::optional<int> wait(std::chrono::milliseconds timeout);

private:
  bool installed_ = false;
};

} // namespace batchq::cli
