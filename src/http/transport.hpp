// The HTTP/1.1 transport of the API (docs/http-api.md "Isolation";
// docs/decisions.md "The API's transport is Boost.Beast"): Boost.Beast on
// Boost.Asio. Accepting, reading requests and writing answers are asynchronous
// on `io_threads` threads, so an idle keep-alive connection, a slow client and
// a parked long-poll hold no thread. A complete request goes to its route's
// lane: `inline_lane` routes run on the IO thread (they must not block:
// /health, CORS preflights, 404s); the others run on a pool (elastic_pool)
// where they may block on Redis. A handler either fills the response or parks
// the request (`parked`): the request then waits on a timer and a wake-up
// without a thread, and looks again on the pool when either fires.
//
// Requests and responses are httplib's plain structs (the routes were written
// for them and the client commands use httplib's client): path, target,
// params, headers, body and the route's regex matches are filled as
// httplib's server filled them. A chunked content provider (CSV results)
// streams from the pool thread, each chunk written asynchronously with a
// timeout.
//
// Thread safety: start() and stop() from one thread; handlers run
// concurrently on the pools.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <httplib.h>

namespace batchq::http {

/// A request that waits for something (a long-poll) without a thread.
struct parked {
  /// One look, on a pool thread: fills `res` and returns true when the request
  /// is answered. `last`: no more waiting (the deadline passed or the server
  /// stops), so it must answer.
  std::function<bool(httplib::Response& res, bool last)> look;
  /// Arms a one-shot wake-up: `wake` may be called once, from any thread,
  /// when a look is worth doing before the timer.
  std::function<void(std::function<void()> wake)> arm;
  /// The longest sleep before the next look (a safety read).
  std::function<std::chrono::milliseconds()> pause;
  std::chrono::steady_clock::time_point deadline;
};

/// A route's handler: fills `res`, or returns how the request waits.
using route_handler =
  std::function<std::optional<parked>(const httplib::Request& req, httplib::Response& res)>;

enum class lane {
  inline_lane, ///< on the IO thread: must not block
  probes,      ///< /ready, /metrics: a pool of their own
  jobs,        ///< the job routes: a pool that grows with the load
};

struct route {
  std::string method; ///< "" matches any method
  std::regex path;    ///< matched against the decoded path; groups in req.matches
  enum lane lane;
  route_handler handler;
};

struct transport_config {
  std::string bind;
  uint16_t port = 0; ///< 0: a free port
  size_t io_threads = 2;
  size_t probe_threads = 2;
  size_t job_threads = 16;  ///< kept
  size_t max_job_threads = 1024;
  size_t max_body = 1 << 20; ///< larger bodies are not read: `too_large` answers
  size_t max_header = 16 * 1024;
  size_t max_connections = 10000; ///< past it new connections are closed at once
  std::chrono::milliseconds idle{2000};      ///< between requests on a keep-alive connection
  std::chrono::milliseconds first_read{5000}; ///< a new connection's first request head
  std::chrono::milliseconds body_read{30000};
  std::chrono::milliseconds write{30000}; ///< per answer or chunk
  size_t max_requests_per_connection = 1000;
  httplib::Headers default_headers; ///< on every answer
  std::vector<route> routes;        ///< the first match wins
  route_handler not_found;          ///< no route matched (inline lane)
  route_handler too_large;          ///< the body is above max_body (jobs lane)
};

class transport {
public:
  explicit transport(transport_config cfg);
  /// Stops (see stop()).
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  /// Binds and starts the IO threads. Returns the bound port; an error text
  /// when the address cannot be bound.
  caf::expected<uint16_t> start();

  /// Stops accepting, has every parked request look a last time, waits (at
  /// most `grace`) for the answers in flight to be written, then closes every
  /// connection and joins the threads. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{10000});

  /// Open connections, parked requests, threads alive (IO and pools), and
  /// job-pool threads running a handler now (metrics, tests).
  size_t connections() const;
  size_t parked_now() const;
  size_t threads() const;
  size_t busy_job_threads() const;

  struct state;

private:
  std::shared_ptr<state> st_;
};

} // namespace batchq::http
