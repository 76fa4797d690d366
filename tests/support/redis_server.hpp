// A private redis-server for process tests that must kill, stop or restart
// Redis (the shared one of scripts/test is never touched): started on a free
// loopback port with its own directory, optionally with an append-only file
// (appendfsync always, so nothing acknowledged is lost by a kill -9), killed
// at destruction. A restart reuses the port and the directory, so it comes
// back with its AOF (or empty, without one).
//
// Thread safety: none; one test thread.
#pragma once

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "src/redis/client.hpp"
#include "tests/support/process.hpp"

namespace batchq::test {

class redis_server {
public:
  /// Starts it; a test failure when it does not answer PING within 10 s.
  explicit redis_server(bool aof = false)
    : aof_(aof), port_(free_port()), dir_(temp_path("redis_dir", "")) {
    ::mkdir(dir_.c_str(), 0755);
    start();
  }

  ~redis_server() {
    if (proc_) {
      proc_->signal(SIGKILL);
      proc_->wait_exit(5s);
    }
    std::string rm = "rm -rf '" + dir_ + "'";
    [[maybe_unused]] auto rc = std::system(rm.c_str());
  }

  uint16_t port() const { return port_; }

  /// Starts the server (again) on the same port and directory, and waits
  /// until it answers. False (and a test failure) otherwise.
  bool start() {
    std::vector<std::string> argv{"/usr/bin/redis-server", "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1", "--dir", dir_, "--save", ""};
    if (aof_) {
      argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
      argv.insert(argv.end(), {"--appendonly", "no"});
    }
    proc_ = std::make_unique<child>();
    if (!proc_->start(argv, dir_ + "/redis.log"))
      return false;
    bool up = wait_until(
      [&] {
        redis::client c{redis::endpoint{"127.0.0.1", port_, 0}};
        auto r = c.command({"PING"});
        return r && r->str == "PONG";
      },
      10s, 20ms);
    EXPECT_TRUE(up) << "private redis-server on " << port_ << " did not answer";
    return up;
  }

  /// kill -9: gone at once, nothing flushed beyond what the AOF holds.
  void kill() {
    proc_->signal(SIGKILL);
    proc_->wait_exit(5s);
  }

  /// SIGSTOP / SIGCONT: connections stay open, nothing answers.
  void pause() { proc_->signal(SIGSTOP); }
  void resume() { proc_->signal(SIGCONT); }

  /// kill -9 and start again (with the AOF when there is one).
  bool restart() {
    kill();
    return start();
  }

private:
  bool aof_;
  uint16_t port_;
  std::string dir_;
  std::unique_ptr<child> proc_;
};

} // namespace batchq::test
