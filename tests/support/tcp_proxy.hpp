// A small TCP proxy for fault tests: forwards 127.0.0.1:<port()> to a target
// port until stall(), after which it forwards nothing in either direction
// but keeps every connection open and accepts new ones without serving them
// (a network path that went silent: no reset, no answer, TCP keepalives
// still acknowledged by this host's kernel). One thread; poll(2).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "tests/support/test_env.hpp"
#include <vector>

namespace batchq::test {

class tcp_proxy {
public:
  explicit tcp_proxy(uint16_t target_port) : target_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0
        || ::listen(listen_fd_, 64) != 0)
      throw std::runtime_error("tcp_proxy: cannot listen");
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::runtime_error("tcp_proxy: pipe");
    loop_ = std::thread{[this] { run(); }};
  }

  ~tcp_proxy() {
    stop_ = true;
    poke();
    loop_.join();
    for (auto& p : pairs_) {
      ::close(p.client);
      if (p.server >= 0)
        ::close(p.server);
    }
    for (int fd : held_)
      ::close(fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  uint16_t port() const { return port_; }

  /// From now on nothing is forwarded and new connections are held unserved.
  void stall() {
    stalled_ = true;
    poke();
  }

  /// From now on, when the server ends a connection, its client side is
  /// kept open (everything the server sent before its end is forwarded, the
  /// end itself is not): a client then sees a server's last words without
  /// the EOF that follows them.
  void hold_clients_when_the_server_closes() { hold_on_server_close_ = true; }

  /// How many connections the server ended while clients were held.
  int held_server_closes() const { return held_server_closes_; }

private:
  struct pair {
    int client;
    int server;
  };

  void poke() {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }

  // Both sides without Nagle's delay, as the servers behind it set theirs:
  // a small message written right after another must not wait for an ACK.
  static void no_delay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }

  int connect_target() {
    int fd = connect_loopback(target_);
    if (fd >= 0)
      no_delay(fd);
    return fd;
  }

  // Copies what `from` has to `to`; false when either side is done.
  static bool pump(int from, int to) {
    char buf[16384];
    auto n = ::read(from, buf, sizeof(buf));
    if (n <= 0)
      return false;
    ssize_t off = 0;
    while (off < n) {
      auto w = ::write(to, buf + off, static_cast<size_t>(n - off));
      if (w <= 0)
        return false;
      off += w;
    }
    return true;
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds;
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      bool stalled = stalled_;
      if (!stalled)
        for (auto& p : pairs_) {
          fds.push_back({p.client, POLLIN, 0});
          fds.push_back({p.server, POLLIN, 0});
        }
      if (::poll(fds.data(), fds.size(), 1000) < 0)
        continue;
      if (fds[0].revents != 0) {
        char buf[64];
        while (::read(wake_[0], buf, sizeof(buf)) > 0) {
        }
      }
      if (fds[1].revents != 0) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          no_delay(c);
          if (stalled_) {
            held_.push_back(c);
          } else {
            int s = connect_target();
            if (s < 0)
              ::close(c);
            else
              pairs_.push_back({c, s});
          }
        }
      }
      if (stalled)
        continue;
      std::vector<pair> alive;
      for (size_t i = 0; i < pairs_.size(); ++i) {
        auto& p = pairs_[i];
        bool ok = true;
        bool server_ended = false;
        auto cr = fds[2 + 2 * i].revents;
        auto sr = fds[3 + 2 * i].revents;
        if (cr != 0)
          ok = pump(p.client, p.server);
        if (ok && sr != 0) {
          ok = pump(p.server, p.client);
          server_ended = !ok;
        }
        if (ok) {
          alive.push_back(p);
        } else if (server_ended && hold_on_server_close_) {
          ::close(p.server);
          held_.push_back(p.client);
          ++held_server_closes_;
        } else {
          ::close(p.client);
          ::close(p.server);
        }
      }
      pairs_ = std::move(alive);
    }
  }

  uint16_t target_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> hold_on_server_close_{false};
  std::atomic<int> held_server_closes_{0};
  std::vector<pair> pairs_; // loop thread only (and the destructor after join)
  std::vector<int> held_;   // ditto
  std::thread loop_;
};

} // namespace batchq::test
