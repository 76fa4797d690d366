#include "src/dev/net.hpp"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "messages/error.hpp"

namespace batchq::dev {

namespace {

/// Closes a socket at scope exit.
struct socket_guard {
  int fd;
  ~socket_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

} // namespace

caf::expected<uint16_t> free_loopback_port() {
  socket_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0)
    return make_error(ec::invalid_config, std::string{"cannot open a socket: "}
                                            + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return make_error(ec::invalid_config, std::string{"cannot find a free loopback port: "}
                                            + std::strerror(errno));
  return ntohs(addr.sin_port);
}

bool can_listen(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  auto service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0)
    return false;
  bool ok = false;
  if (res != nullptr) {
    socket_guard s{::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol)};
    int one = 1;
    ok = s.fd >= 0 && ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0
         && ::bind(s.fd, res->ai_addr, res->ai_addrlen) == 0 && ::listen(s.fd, 1) == 0;
  }
  ::freeaddrinfo(res);
  return ok;
}

} // namespace batchq::dev
