// libFuzzer target: the HTTP layer. The real batchq::http::server
// (src/http/server.hpp, all routes) runs in this process on a free loopback
// port against the Redis on 127.0.0.1:$BATCHQ_TEST_REDIS_PORT; each input is
// sent as the raw bytes of one or more HTTP requests on a new TCP connection
// and the answers are read until the server closes (at most answer_timeout;
// see exchange() for when the write side is shut down).
//
// Redis: user `fuzz` with master key `fuzzkey` in the metadata DB (5), jobs in
// DB 15 (no test suite uses it: they use 5 and 10-14), flushed at start and every flush_every inputs
// so that the queue never fills. Cancels go to a stub hook (job_not_found;
// ids starting with 'x' "succeed" and then read the job).
//
// Invariants (a violation aborts, which libFuzzer reports as a crash):
//  - no answer has a 5xx status other than 503;
//  - the server keeps answering `GET /health` with 200 (checked every
//    health_every inputs and after any input whose connection the server did
//    not close within answer_timeout).
// ASan/UBSan and coverage see batchq's code and the Boost.Beast transport's
// HTTP parser (header-only, compiled in).
#include "src/http/server.hpp"

#include "messages/error.hpp"
#include "src/log/log.hpp"
#include "src/redis/client.hpp"
#include "src/redis/users.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr int batch_db = 15;
constexpr const char* fuzz_user = "fuzz";
constexpr const char* fuzz_key = "fuzzkey";
constexpr auto answer_timeout = 3s;
constexpr int flush_every = 64;
constexpr int health_every = 8;

[[noreturn]] void fail(const std::string& what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_http: %s\n%.*s\n", what.c_str(),
               static_cast<int>(std::min<size_t>(detail.size(), 2000)), detail.data());
  std::abort();
}

// BATCHQ_FUZZ_HTTP_DEBUG is set: print every answer.
bool f_debug() {
  static bool d = std::getenv("BATCHQ_FUZZ_HTTP_DEBUG") != nullptr;
  return d;
}

struct fixture {
  uint16_t redis_port = 0;
  std::unique_ptr<batchq::redis::client> batch;
  std::unique_ptr<batchq::http::server> srv;
  uint16_t port = 0;
  uint64_t runs = 0;
  bool debug = f_debug();

  fixture() {
    const char* env = std::getenv("BATCHQ_TEST_REDIS_PORT");
    if (env == nullptr || *env == '\0') {
      std::fprintf(stderr, "fuzz_http: BATCHQ_TEST_REDIS_PORT is not set: start a Redis "
                           "(source scripts/services.sh; start_services) and export it\n");
      std::exit(2);
    }
    redis_port = static_cast<uint16_t>(std::atoi(env));
    batchq::log::configure(false, batchq::log::level::error, "fuzz_http");

    batchq::redis::client meta{
      batchq::redis::endpoint{"127.0.0.1", redis_port, batchq::redis::metadata_db}};
    batchq::redis::user_account a;
    a.user = fuzz_user;
    a.database_name = "postgres";
    a.database_role = "postgres";
    auto key = batchq::redis::add_user(meta, a, std::string{fuzz_key});
    if (!key)
      fail("cannot create user fuzz in Redis on port " + std::to_string(redis_port));
    batch = std::make_unique<batchq::redis::client>(
      batchq::redis::endpoint{"127.0.0.1", redis_port, batch_db});
    flush();

    batchq::settings s;
    s.redis_host = "127.0.0.1";
    s.redis_port = redis_port;
    s.redis_db = batch_db;
    s.http_bind = "127.0.0.1";
    s.http_port = 0;
    batchq::http::node_hooks hooks;
    hooks.cancel = [](const std::string& id,
                      const std::string&) -> caf::expected<batchq::cancel_result> {
      if (!id.empty() && id[0] == 'x')
        return batchq::cancel_result{id, "cancelled"};
      return batchq::make_error(batchq::ec::job_not_found, id);
    };
    srv = std::make_unique<batchq::http::server>(s, batchq::http::routes::all, hooks);
    auto p = srv->start();
    if (!p)
      fail("cannot start the HTTP server");
    port = *p;
  }

  void flush() {
    auto r = batch->command({"FLUSHDB"});
    if (!r)
      fail("FLUSHDB failed on DB 15");
  }
};

fixture& the_fixture() {
  static fixture* f = new fixture; // never destroyed: handler threads outlive main's return
  return *f;
}

struct answer {
  int status;
  std::string_view head_and_body;
  std::string_view body;
};

// Splits what the server sent into answers: status line, headers, then a
// Content-Length body (batchq and httplib always send one; no chunked
// answers). A HEAD answer has a Content-Length but no body: when the bytes
// after the headers start another status line, the body is taken as empty.
// `complete`: the bytes end exactly after the last answer.
std::vector<answer> split_answers(std::string_view all, bool& complete) {
  std::vector<answer> out;
  complete = false;
  size_t pos = 0;
  while (pos < all.size()) {
    auto rest = all.substr(pos);
    if (rest.substr(0, 7) != "HTTP/1.")
      return out; // not an answer we can follow
    auto sp = rest.find(' ');
    auto head_end = rest.find("\r\n\r\n");
    if (sp == std::string_view::npos || head_end == std::string_view::npos || sp + 4 > head_end)
      return out;
    int status = std::atoi(std::string{rest.substr(sp + 1, 3)}.c_str());
    auto head = rest.substr(0, head_end);
    size_t length = 0;
    for (auto name : {"Content-Length: ", "content-length: "})
      if (auto at = head.find(name); at != std::string_view::npos)
        length = std::strtoul(std::string{head.substr(at + std::strlen(name), 20)}.c_str(),
                              nullptr, 10);
    size_t body_at = head_end + 4;
    if (rest.substr(body_at, 7) == "HTTP/1.")
      length = 0;
    if (body_at + length > rest.size())
      return out; // not all here yet
    out.push_back({status, rest.substr(0, body_at + length), rest.substr(body_at, length)});
    pos += body_at + length;
  }
  complete = true;
  return out;
}

// How many complete requests `req` holds, read roughly as httplib reads
// them (header names in any case, blanks around values, Content-Length or
// `Transfer-Encoding: chunked` bodies). Decides only how long to wait for
// answers, never what is checked: a wrong guess costs at most expect_ms.
size_t complete_requests(std::string_view req) {
  auto lower = [](std::string_view x) {
    std::string out{x};
    for (auto& c : out)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  auto trim = [](std::string_view x) {
    while (!x.empty() && (x.front() == ' ' || x.front() == '\t'))
      x.remove_prefix(1);
    while (!x.empty() && (x.back() == ' ' || x.back() == '\t' || x.back() == '\r'))
      x.remove_suffix(1);
    return x;
  };
  size_t n = 0;
  size_t pos = 0;
  while (pos < req.size()) {
    auto end = req.find("\r\n\r\n", pos);
    if (end == std::string_view::npos)
      return n;
    auto head = req.substr(pos, end - pos);
    pos = end + 4;
    bool chunked = false;
    std::optional<std::string> length;
    for (size_t at = head.find('\n'); at != std::string_view::npos; at = head.find('\n', at + 1)) {
      auto line = head.substr(at + 1, head.find('\n', at + 1) - at - 1);
      auto colon = line.find(':');
      if (colon == std::string_view::npos)
        continue;
      auto name = lower(trim(line.substr(0, colon)));
      auto value = lower(trim(line.substr(colon + 1)));
      if (name == "transfer-encoding" && value == "chunked")
        chunked = true;
      else if (name == "content-length" && !length)
        length = value;
    }
    if (chunked) {
      for (;;) {
        auto eol = req.find("\r\n", pos);
        if (eol == std::string_view::npos)
          return n;
        char* stop = nullptr;
        auto text = std::string{req.substr(pos, eol - pos)};
        auto size = std::strtoull(text.c_str(), &stop, 16);
        if (stop == text.c_str())
          return n + 1; // a bad chunk line: answered at once (400)
        pos = eol + 2;
        if (size == 0) {
          auto trailer_end = req.find("\r\n", pos);
          if (trailer_end == std::string_view::npos)
            return n;
          pos = trailer_end + 2;
          break;
        }
        if (size > req.size() - pos)
          return n;
        pos += size + 2;
      }
    } else if (length) {
      char* stop = nullptr;
      auto size = std::strtoull(length->c_str(), &stop, 10);
      if (stop == length->c_str())
        return n + 1; // not a number: answered at once (400)
      if (size > req.size() - pos)
        return n;
      pos += size;
    }
    ++n;
  }
  return n;
}

// Sends `req` and reads the answers. cpp-httplib 0.11 drops a connection
// whose peer has shut down its write side, even with a request read and its
// handler done (the answer is not written), so the write side is shut down
// only once every complete request of `req` got its answer (or nothing came
// for expect_ms), and then `idle_ms` more without a byte (the server waits
// for the rest of an incomplete request); the server then closes. `eof`: the
// server closed within answer_timeout.
std::string exchange(uint16_t port, std::string_view req, bool& eof) {
  constexpr int idle_ms = 3;
  constexpr int expect_ms = 60;
  eof = false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    fail("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {};
  }
  size_t off = 0;
  while (off < req.size()) {
    auto n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      break; // the server closed early (e.g. after a bad request line)
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[16384];
  auto want = complete_requests(req);
  size_t got = 0;
  bool shut = false;
  auto deadline = std::chrono::steady_clock::now() + answer_timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    if (left <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    int wait_ms = shut ? static_cast<int>(left) : got < want ? expect_ms : idle_ms;
    int ready = ::poll(&p, 1, std::min(wait_ms, static_cast<int>(left)));
    if (ready <= 0) {
      if (shut)
        break;
      if (got < want && f_debug())
        std::fprintf(stderr, "fuzz_http: no answer within %d ms, shutting down\n", expect_ms);
      ::shutdown(fd, SHUT_WR);
      shut = true;
      continue;
    }
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      eof = true; // EOF or reset: the server is done with us
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    bool complete = false;
    got = split_answers(out, complete).size();
  }
  ::close(fd);
  return out;
}

void check_answers(std::string_view all) {
  bool complete = false;
  for (const auto& a : split_answers(all, complete))
    if (a.status >= 500 && a.status != 503)
      fail("answer with status " + std::to_string(a.status), a.head_and_body);
}

bool health_ok(uint16_t port, bool debug) {
  bool complete = false;
  auto a = exchange(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    complete);
  if (debug)
    std::fprintf(stderr, "fuzz_http: /health answer:\n%s\n", a.c_str());
  return a.rfind("HTTP/1.1 200", 0) == 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& f = the_fixture();
  if (++f.runs % flush_every == 0)
    f.flush();
  std::string_view req{reinterpret_cast<const char*>(data), size};
  bool eof = false;
  auto answers = exchange(f.port, req, eof);
  if (f.debug)
    std::fprintf(stderr, "fuzz_http: %s, answer:\n%s\n", eof ? "closed" : "NOT CLOSED",
                 answers.c_str());
  check_answers(answers);
  if (!eof || f.runs % health_every == 0) {
    if (!health_ok(f.port, f.debug)) {
      // One retry: a just-closed connection may still hold a pool thread.
      std::this_thread::sleep_for(100ms);
      if (!health_ok(f.port, f.debug))
        fail("the server stopped answering GET /health", req);
    }
  }
  return 0;
}
