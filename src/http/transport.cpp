#include "src/http/transport.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "messages/error.hpp"
#include "src/http/errors.hpp"
#include "src/http/task_pool.hpp"
#include "src/log/log.hpp"

namespace batchq::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

class session;

/// One request from its head being read to its answer being written.
struct exchange {
  std::shared_ptr<session> s;
  httplib::Request req;
  httplib::Response res;
  bool keep_alive = false;
  std::optional<parked> park;
  std::optional<net::steady_timer> timer; // used on the session's strand only
  bool wake_pending = false;              // on the strand only
};

using exchange_ptr = std::shared_ptr<exchange>;

bool is_parse_error(const beast::error_code& ec) {
  if (ec.category() != bhttp::make_error_code(bhttp::error::bad_method).category())
    return false;
  // The peer went away (or sent nothing) rather than something malformed.
  return ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

} // namespace

struct transport::state {
  explicit state(transport_config c)
    : cfg(std::move(c)),
      ioc(static_cast<int>(cfg.io_threads)),
      acceptor(net::make_strand(ioc)),
      probes(cfg.probe_threads, cfg.probe_threads * 4),
      jobs(cfg.job_threads, cfg.max_job_threads) {
  }

  transport_config cfg;
  std::atomic<size_t> live_sessions{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> io_stopped{false};
  mutable std::mutex mtx;
  std::condition_variable answered_cv; // in_flight reached 0
  size_t in_flight = 0;                // guarded by mtx
  std::set<std::weak_ptr<session>, std::owner_less<std::weak_ptr<session>>>
    sessions; // guarded by mtx; pruned now and then
  size_t sessions_added = 0; // guarded by mtx
  std::set<std::weak_ptr<exchange>, std::owner_less<std::weak_ptr<exchange>>>
    parked_set; // guarded by mtx
  // Declared last but one: destroyed before the counters above, after the
  // pools (the pools' tasks hold sessions whose sockets belong to ioc).
  net::io_context ioc;
  // Keeps the IO threads running while nothing is pending on them (a parked
  // request or a handler on a pool has no operation in ioc; after the
  // acceptor closes, ioc would run out of work before their answers).
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::optional<net::steady_timer> accept_retry;
  steady::time_point last_accept_warning{}; // on the acceptor's strand
  elastic_pool probes;
  elastic_pool jobs;
  std::vector<std::thread> io;
  bool started = false;
  bool stopped = false;
  uint16_t port = 0;

  void accept();
  void begun() {
    std::lock_guard<std::mutex> guard{mtx};
    ++in_flight;
  }
  void ended() {
    std::lock_guard<std::mutex> guard{mtx};
    if (--in_flight == 0)
      answered_cv.notify_all();
  }
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  session(transport::state& t, tcp::socket sock) : t_(t), stream_(std::move(sock)) {
    ++t_.live_sessions;
  }
  ~session() { --t_.live_sessions; }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_head(); });
  }

  auto executor() { return stream_.get_executor(); }

  /// With no IO thread running (stop()): closes the socket.
  void close_now() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

  /// Any thread: the exchange's answer is in `x->res`; writes it.
  void finish(const exchange_ptr& x);
  /// Any thread: `x->park` is set; waits for its wake-up or timer.
  void park(const exchange_ptr& x);
  /// On the strand: a wake-up for a parked exchange.
  void wake(const exchange_ptr& x) {
    x->wake_pending = true;
    if (x->timer)
      x->timer->cancel();
  }

private:
  using parser_type = bhttp::request_parser<bhttp::string_body>;

  void read_head() {
    if (t_.stopping)
      return close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(t_.cfg.max_header));
    // Checked when the head is in (on_head). Not boost::none: Beast 1.74
    // compares the length with the optional, and any length > none.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.expires_after(served_ == 0 ? t_.cfg.first_read : t_.cfg.idle);
    bhttp::async_read_header(stream_, buf_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->on_head(ec);
                             });
  }

  void on_head(beast::error_code ec) {
    if (ec) {
      if (is_parse_error(ec))
        return bad_request(ec);
      return close(); // gone, idle past the timeout, or stopping
    }
    auto& head = parser_->get();
    if (head.target().size() > max_target) {
      // As httplib's server (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH); it also
      // bounds the routes' std::regex, which recurses per character.
      return answer_and_close(414, "The request target is longer than "
                                     + std::to_string(max_target) + " bytes");
    }
    auto length = parser_->content_length();
    bool expects_continue = beast::iequals(head[bhttp::field::expect], "100-continue");
    if (length && *length > t_.cfg.max_body) {
      // A client that waits for 100 sends nothing more; one that sends the
      // body anyway reads the answer only if the body is read (as httplib's
      // server did, within max_drain).
      if (expects_continue || *length > max_drain)
        return refuse_too_large();
      return drain_then_refuse(*length);
    }
    if (expects_continue) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                        head.version());
      stream_.expires_after(t_.cfg.write);
      bhttp::async_write(stream_, *cont,
                         [self = shared_from_this(), cont](beast::error_code e, size_t) {
                           if (e)
                             return self->close();
                           self->read_body();
                         });
      return;
    }
    read_body();
  }

  void read_body() {
    parser_->body_limit(t_.cfg.max_body); // a chunked body has no length to check first
    if (!parser_->is_done() && buf_.size() > 0) {
      // Most bodies came in with their head: parse them here instead of going
      // through another asynchronous read (measured: creates ~10 % slower).
      parser_->eager(true);
      beast::error_code ec;
      auto used = parser_->put(buf_.data(), ec);
      buf_.consume(used);
      if (ec == bhttp::error::body_limit)
        return refuse_too_large();
      if (ec && ec != bhttp::error::need_more)
        return is_parse_error(ec) ? bad_request(ec) : close();
    }
    if (parser_->is_done())
      return on_request();
    stream_.expires_after(t_.cfg.body_read);
    bhttp::async_read(stream_, buf_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec == bhttp::error::body_limit)
                          return self->refuse_too_large();
                        if (ec && is_parse_error(ec))
                          return self->bad_request(ec);
                        if (ec)
                          return self->close();
                        self->on_request();
                      });
  }

  /// An exchange for the head read so far (and the body when read).
  exchange_ptr make_exchange(bool with_body) {
    auto x = std::make_shared<exchange>();
    x->s = shared_from_this();
    auto& msg = parser_->get();
    auto& req = x->req;
    req.method = std::string{msg.method_string()};
    req.target = std::string{msg.target()};
    req.version = msg.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    for (const auto& f : msg)
      req.headers.emplace(std::string{f.name_string()}, std::string{f.value()});
    if (with_body)
      req.body = std::move(msg.body());
    auto q = req.target.find('?');
    req.path = httplib::detail::decode_url(req.target.substr(0, q), false);
    if (q != std::string::npos)
      httplib::detail::parse_query_text(req.target.substr(q + 1), req.params);
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      req.remote_addr = peer.address().to_string();
      req.remote_port = peer.port();
    }
    x->keep_alive = msg.keep_alive();
    return x;
  }

  void on_request() {
    ++served_;
    auto x = make_exchange(true);
    t_.begun();
    const route* r = nullptr;
    for (const auto& candidate : t_.cfg.routes)
      if ((candidate.method.empty() || candidate.method == x->req.method)
          && std::regex_match(x->req.path, x->req.matches, candidate.path)) {
        r = &candidate;
        break;
      }
    if (r == nullptr)
      return run(x, t_.cfg.not_found);
    if (r->lane == lane::inline_lane)
      return run(x, r->handler);
    auto& pool = r->lane == lane::probes ? t_.probes : t_.jobs;
    pool.enqueue([x, h = &r->handler] { x->s->run(x, *h); });
  }

  /// A body above max_body: answered by cfg.too_large, then the connection
  /// closes (the body is not read).
  void refuse_too_large() {
    ++served_;
    auto x = make_exchange(false);
    x->keep_alive = false;
    t_.begun();
    t_.jobs.enqueue([x, this] { run(x, t_.cfg.too_large); });
  }

  static constexpr uint64_t max_drain = 64u << 20;
  static constexpr size_t max_target = 8192;

  /// Reads and drops `left` more bytes of a body too large to keep, then
  /// refuses it.
  void drain_then_refuse(uint64_t left) {
    auto buffered = std::min<uint64_t>(buf_.size(), left);
    buf_.consume(static_cast<size_t>(buffered));
    left -= buffered;
    if (left == 0)
      return refuse_too_large();
    auto scratch = std::make_shared<std::vector<char>>(64 * 1024);
    stream_.expires_after(t_.cfg.body_read);
    stream_.async_read_some(
      net::buffer(*scratch, static_cast<size_t>(std::min<uint64_t>(left, scratch->size()))),
      [self = shared_from_this(), scratch, left](beast::error_code ec, size_t n) {
        if (ec)
          return self->close();
        self->drain_then_refuse(left - n);
      });
  }

  void bad_request(const beast::error_code& ec) {
    answer_and_close(400, "Bad request: " + ec.message());
  }

  /// Answers an error of the transport's own (no route ran), then closes.
  void answer_and_close(int status, const std::string& message) {
    auto x = std::make_shared<exchange>();
    x->s = shared_from_this();
    x->keep_alive = false;
    t_.begun();
    write_error(x->res, status, message);
    write_answer(x);
  }

  /// A handler's exception: logged, and the answer is a 500 naming it.
  static void internal_error(exchange& x, const std::exception& e) {
    log::error("http handler failed", {{"method", x.req.method}, {"path", x.req.path},
                                       {"error", e.what()}});
    x.res = httplib::Response{};
    write_error(x.res, 500, std::string{"internal error: "} + e.what());
  }

  /// Runs a handler for `x` on this thread (the lane's).
  void run(const exchange_ptr& x, const route_handler& h) {
    std::optional<parked> p;
    try {
      p = h(x->req, x->res);
    } catch (const std::exception& e) {
      internal_error(*x, e);
    }
    if (p) {
      x->park = std::move(*p);
      return park(x);
    }
    finish(x);
  }

  /// On the strand: looks once more on the jobs pool.
  void look_again(const exchange_ptr& x) {
    x->wake_pending = false;
    t_.jobs.enqueue([x, this] {
      bool last = t_.stopping || steady::now() >= x->park->deadline;
      bool done = true;
      try {
        done = x->park->look(x->res, last) || last;
      } catch (const std::exception& e) {
        internal_error(*x, e);
      }
      if (!done)
        return park(x);
      {
        std::lock_guard<std::mutex> guard{t_.mtx};
        t_.parked_set.erase(x);
      }
      x->park.reset(); // its interest and the user's place go now
      finish(x);
    });
  }

  void write_answer(const exchange_ptr& x) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(x->req.version == "HTTP/1.0" ? 10 : 11);
    bool keep = fill_head(*res, *x);
    res->body() = std::move(x->res.body);
    res->prepare_payload();
    stream_.expires_after(t_.cfg.write);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, x, keep](beast::error_code ec, size_t) {
                         self->answered(*x);
                         if (ec || !keep)
                           return self->close();
                         self->read_head();
                       });
  }

  /// A handler that set no status answered 200 (as httplib's server did).
  static unsigned status_of(const httplib::Response& res) {
    return static_cast<unsigned>(res.status <= 0 ? 200 : res.status);
  }

  /// Status, the default headers (unless the handler set the same), the
  /// handler's headers, and whether the connection stays open afterwards.
  template <class Message>
  bool fill_head(Message& m, const exchange& x) const {
    m.result(status_of(x.res));
    for (const auto& [name, value] : t_.cfg.default_headers)
      if (x.res.headers.find(name) == x.res.headers.end())
        m.insert(name, value);
    for (const auto& [name, value] : x.res.headers)
      m.insert(name, value);
    bool keep = x.keep_alive && !t_.stopping && served_ < t_.cfg.max_requests_per_connection;
    m.keep_alive(keep);
    return keep;
  }

  /// On a pool thread: streams a chunked content provider (CSV results),
  /// each write done on the strand with the write timeout and waited for.
  void stream_chunked(const exchange_ptr& x);
  bool write_and_wait(std::function<void(std::function<void(beast::error_code)>)> op);

  void answered(const exchange& x) {
    log::debug("http request", {{"method", x.req.method},
                                {"path", x.req.path},
                                {"status", std::to_string(status_of(x.res))}});
    t_.ended();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  transport::state& t_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<parser_type> parser_;
  size_t served_ = 0;
};

void session::finish(const exchange_ptr& x) {
  if (x->res.content_provider_) {
    if (t_.io_stopped)
      return t_.ended();
    return stream_chunked(x);
  }
  net::post(stream_.get_executor(), [x] { x->s->write_answer(x); });
}

void session::park(const exchange_ptr& x) {
  {
    std::lock_guard<std::mutex> guard{t_.mtx};
    t_.parked_set.insert(x);
  }
  net::post(stream_.get_executor(), [x] {
    auto& self = *x->s;
    auto left = x->park->deadline - steady::now();
    if (x->wake_pending || self.t_.stopping || left <= steady::duration::zero())
      return self.look_again(x);
    if (!x->timer)
      x->timer.emplace(self.stream_.get_executor());
    auto pause = std::chrono::duration_cast<steady::duration>(x->park->pause());
    x->timer->expires_after(std::min(pause, left));
    x->timer->async_wait([x](beast::error_code) { x->s->look_again(x); });
    x->park->arm([w = std::weak_ptr<exchange>(x)] {
      if (auto x = w.lock())
        net::post(x->s->stream_.get_executor(), [x] { x->s->wake(x); });
    });
  });
}

bool session::write_and_wait(std::function<void(std::function<void(beast::error_code)>)> op) {
  auto done = std::make_shared<std::promise<beast::error_code>>();
  auto f = done->get_future();
  net::post(stream_.get_executor(), [self = shared_from_this(), op = std::move(op), done] {
    self->stream_.expires_after(self->t_.cfg.write);
    op([done](beast::error_code ec) { done->set_value(ec); });
  });
  // The IO threads may stop before the write runs (stop() past its grace).
  while (f.wait_for(std::chrono::milliseconds{100}) != std::future_status::ready)
    if (t_.io_stopped)
      return false;
  return !f.get();
}

void session::stream_chunked(const exchange_ptr& x) {
  auto head = std::make_shared<bhttp::response<bhttp::empty_body>>();
  head->version(11);
  bool keep = fill_head(*head, *x);
  head->chunked(true);
  auto sr = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*head);
  bool ok = write_and_wait([this, sr](auto done) {
    bhttp::async_write_header(stream_, *sr, [done](beast::error_code ec, size_t) { done(ec); });
  });
  bool finished = false;
  size_t offset = 0;
  httplib::DataSink sink;
  sink.write = [&](const char* data, size_t n) {
    if (!ok)
      return false;
    if (n == 0)
      return true;
    net::const_buffer b{data, n};
    ok = write_and_wait([this, b](auto done) {
      net::async_write(stream_, bhttp::make_chunk(b),
                       [done](beast::error_code ec, size_t) { done(ec); });
    });
    offset += n;
    return ok;
  };
  sink.done = [&] { finished = true; };
  sink.is_writable = [&] { return ok; };
  while (ok && !finished)
    if (!x->res.content_provider_(offset, 0, sink))
      ok = false;
  if (ok)
    ok = write_and_wait([this](auto done) {
      net::async_write(stream_, bhttp::make_chunk_last(),
                       [done](beast::error_code ec, size_t) { done(ec); });
    });
  x->res.content_provider_success_ = ok;
  net::post(stream_.get_executor(), [x, ok, keep, head, sr] {
    x->s->answered(*x);
    if (!ok || !keep)
      return x->s->close();
    x->s->read_head();
  });
}

} // namespace

void transport::state::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
    if (stopping || ec == net::error::operation_aborted)
      return;
    if (ec) {
      // Out of descriptors, or the like: try again shortly instead of
      // spinning, and say so at most once a second.
      auto now = steady::now();
      if (now - last_accept_warning >= std::chrono::seconds{1}) {
        last_accept_warning = now;
        log::warning("http accept failed", {{"error", ec.message()},
                                            {"open_connections", std::to_string(live_sessions)}});
      }
      if (!accept_retry)
        accept_retry.emplace(acceptor.get_executor());
      accept_retry->expires_after(std::chrono::milliseconds{50});
      accept_retry->async_wait([this](beast::error_code e) {
        if (!e)
          accept();
      });
      return;
    }
    if (live_sessions >= cfg.max_connections) {
      beast::error_code ignored;
      sock.close(ignored);
    } else {
      beast::error_code ignored;
      sock.set_option(tcp::no_delay{true}, ignored);
      auto s = std::make_shared<session>(*this, std::move(sock));
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (++sessions_added % 1024 == 0)
          for (auto i = sessions.begin(); i != sessions.end();)
            i = i->expired() ? sessions.erase(i) : std::next(i);
        sessions.insert(s);
      }
      s->start();
    }
    accept();
  });
}

transport::transport(transport_config cfg) : st_(std::make_shared<state>(std::move(cfg))) {
}

transport::~transport() {
  stop();
}

caf::expected<uint16_t> transport::start() {
  auto& st = *st_;
  if (st.started)
    return st.port;
  beast::error_code ec;
  tcp::resolver resolver{st.ioc};
  auto found = resolver.resolve(st.cfg.bind, std::to_string(st.cfg.port),
                                tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || found.empty())
    return make_error(ec::invalid_config, "cannot resolve " + st.cfg.bind + ": " + ec.message());
  auto where = found.begin()->endpoint();
  st.acceptor.open(where.protocol(), ec);
  if (!ec)
    st.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    st.acceptor.bind(where, ec);
  if (!ec)
    st.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(ec::invalid_config, ec.message());
  st.port = st.acceptor.local_endpoint().port();
  st.started = true;
  st.accept();
  st.work.emplace(st.ioc.get_executor());
  for (size_t i = 0; i < st.cfg.io_threads; ++i)
    st.io.emplace_back([&st] { st.ioc.run(); });
  return st.port;
}

void transport::stop(std::chrono::milliseconds grace) {
  auto& st = *st_;
  if (!st.started || st.stopped)
    return;
  st.stopped = true;
  st.stopping = true;
  net::post(st.acceptor.get_executor(), [&st] {
    beast::error_code ignored;
    st.acceptor.close(ignored);
    if (st.accept_retry)
      st.accept_retry->cancel();
  });
  // Every parked request looks a last time and answers.
  std::vector<exchange_ptr> waiting;
  {
    std::lock_guard<std::mutex> guard{st.mtx};
    for (const auto& w : st.parked_set)
      if (auto x = w.lock())
        waiting.push_back(std::move(x));
  }
  for (auto& x : waiting)
    net::post(x->s->executor(), [x] { x->s->wake(x); });
  waiting.clear();
  {
    std::unique_lock<std::mutex> lock{st.mtx};
    st.answered_cv.wait_for(lock, grace, [&st] { return st.in_flight == 0; });
  }
  st.io_stopped = true;
  st.work.reset();
  st.ioc.stop();
  for (auto& t : st.io)
    t.join();
  {
    std::lock_guard<std::mutex> guard{st.mtx};
    for (const auto& w : st.sessions)
      if (auto s = w.lock())
        s->close_now();
  }
  st.probes.shutdown();
  st.jobs.shutdown();
}

size_t transport::connections() const {
  return st_->live_sessions.load();
}

size_t transport::parked_now() const {
  std::lock_guard<std::mutex> guard{st_->mtx};
  return st_->parked_set.size();
}

size_t transport::busy_job_threads() const {
  return st_->jobs.busy();
}

size_t transport::threads() const {
  return st_->io.size() + st_->probes.threads() + st_->jobs.threads();
}

} // namespace batchq::http
