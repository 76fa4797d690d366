// Where the integration tests find their real Redis and PostgreSQL.
//
// scripts/test starts both servers on free loopback ports and exports
//   BATCHQ_TEST_REDIS_PORT   Redis 7 on 127.0.0.1 (no auth)
//   BATCHQ_TEST_PG_PORT      PostgreSQL 15 on 127.0.0.1, superuser `postgres`, trust auth
// A test that needs a server and finds no variable fails loudly (it never
// skips): run the suite through scripts/test.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace batchq::test {

/// A TCP connection to 127.0.0.1:`port` (close-on-exec), or -1.
inline int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline int env_port(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name << " is not set: run the tests through scripts/test, which starts "
                  << "a private Redis and PostgreSQL and exports it";
    return 0;
  }
  return std::atoi(v);
}

inline int redis_port() { return env_port("BATCHQ_TEST_REDIS_PORT"); }
inline int pg_port() { return env_port("BATCHQ_TEST_PG_PORT"); }

/// A libpq conninfo string for the test cluster's superuser.
inline std::string pg_conninfo(const std::string& dbname = "postgres") {
  return "host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=postgres dbname=" + dbname;
}

/// A name no other test (or parallel ctest process) uses, e.g. for a user: "prefix_3f9a1c".
inline std::string unique_name(const std::string& prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix + "_";
  for (int i = 0; i < 12; ++i)
    s += hex[rng() % 16];
  return s;
}

/// A "VmRSS:"/"VmHWM:" line of /proc/<pid>/status in kB (0 if unreadable).
inline long proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0)
      return std::stol(line.substr(field.size()));
  return 0;
}

} // namespace batchq::test
