#include "src/http/server.hpp"

#include <algorithm>

#include <httplib.h>

#include "messages/error.hpp"
#include "src/http/auth.hpp"
#include "src/http/context.hpp"
#include "src/http/errors.hpp"
#include "src/http/jobs.hpp"
#include "src/http/results.hpp"
#include "src/http/transport.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/users.hpp"

namespace batchq::http {

// -- context ----------------------------------------------------------------------

namespace {

/// Redis connections of the API reconnect quicker than the actors' (a client
/// request should not fail for seconds after Redis is back).
constexpr redis::backoff_policy api_backoff{std::chrono::milliseconds{50},
                                            std::chrono::milliseconds{500}};

} // namespace

context::context(settings s, node_hooks h)
  : cfg(std::move(s)),
    hooks(std::move(h)),
    user_from_host(cfg.api_user_from_host),
    batch(redis::endpoint{cfg.redis_host, cfg.redis_port, cfg.redis_db}, api_backoff),
    meta(redis::endpoint{cfg.redis_host, cfg.redis_port, redis::metadata_db}, api_backoff) {
}

bool context::role_key_due(const std::string& user, const std::string& role,
                           const std::string& token) {
  std::lock_guard<std::mutex> guard{role_keys_mtx_};
  auto i = role_keys_written_.find({user, role});
  return i == role_keys_written_.end() || i->second.first != token
         || std::chrono::steady_clock::now() >= i->second.second;
}

void context::role_key_written(const std::string& user, const std::string& role,
                               const std::string& token) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{role_keys_mtx_};
  if (role_keys_written_.size() > 10000) // keep it small: forget what is due anyway
    for (auto i = role_keys_written_.begin(); i != role_keys_written_.end();)
      i = now >= i->second.second ? role_keys_written_.erase(i) : std::next(i);
  role_keys_written_[{user, role}] = {token, now + std::chrono::minutes{1}};
}

void context::stop() {
  stopping_ = true;
  if (finals)
    finals->stop();
}

// -- routes -----------------------------------------------------------------------

namespace {

// The optional `/user/{user}` prefix (group 1) and the API versions CARTO serves.
const std::string user_prefix = R"(^(?:/user/([^/]+))?)";
const std::string job_collection = user_prefix + R"(/api/v[12]/sql/job/?$)";
const std::string job_item = user_prefix + R"(/api/v[12]/sql/job/([^/]+)/?$)";
const std::string wip_path = user_prefix + R"(/api/v[12]/jobs-wip/?$)";
const std::string job_results =
  user_prefix + R"(/api/v[12]/sql/job/([^/]+)/results/([^/]+)/?$)";

const char* metrics_type = "text/plain; version=0.0.4; charset=utf-8";

httplib::Headers cors_headers() {
  return {
    {"Access-Control-Allow-Origin", "*"},
    {"Access-Control-Allow-Headers", "X-Requested-With, X-Prototype-Version, X-CSRF-Token, "
                                     "Authorization, Content-Type, Idempotency-Key"},
    {"Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"},
  };
}

/// Gauges read from Redis at scrape time: one SMEMBERS and one pipelined
/// batch of LLEN.
std::vector<metrics::sample> redis_samples(context& ctx) {
  auto c = ctx.batch.checkout();
  auto up = [](double v) {
    return metrics::sample{"batchq_redis_up", "gauge",
                           "Whether this node's API reached Redis at scrape time.", v};
  };
  auto users = c->command({"SMEMBERS", std::string{redis::keys::queue_index}});
  if (!users)
    return {up(0)};
  double depth = 0;
  if (!users->elements.empty()) {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(users->elements.size());
    for (const auto& u : users->elements)
      cmds.push_back({"LLEN", redis::keys::queue(u.str)});
    auto lens = c->pipeline(cmds);
    if (!lens)
      return {up(0)};
    for (const auto& l : *lens)
      if (l.is_integer())
        depth += static_cast<double>(l.integer);
  }
  return {
    up(1),
    {"batchq_queue_depth", "gauge", "Job ids waiting in users' queues (Redis, whole cluster).",
     depth},
    {"batchq_queued_users", "gauge", "Users with queued jobs (batch:indexes:queue).",
     static_cast<double>(users->elements.size())},
  };
}

} // namespace

struct server::impl {
  impl(const settings& s, routes r, node_hooks h) : ctx(s, std::move(h)), which(r) {}

  context ctx;
  routes which;
  std::unique_ptr<transport> http; // made by start()
  uint16_t port = 0;
  bool started = false;
  bool stopped = false;
  std::regex job_collection_re{job_collection};
  std::regex job_item_re{job_item};
  std::regex wip_re{wip_path};
  std::regex job_results_re{job_results};

  /// An admitted caller (auth.hpp) and its place among its requests in
  /// flight (user_gate.hpp); nullopt when the answer (4xx, 429, 503) is written.
  struct admitted {
    caller who;
    user_gate::pass pass;
  };
  std::optional<admitted> let_in(const httplib::Request& req, std::string_view body,
                                 httplib::Response& res) {
    auto who = admit(ctx, req, body, res, req.matches[1].str());
    if (!who)
      return std::nullopt;
    auto pass = ctx.gate.enter(who->user);
    if (!pass) {
      write_error(res, 429, "Too many requests in flight for user '" + who->user + "' (at most "
                              + std::to_string(ctx.gate.max_in_flight())
                              + " at once); retry when one has been answered");
      return std::nullopt;
    }
    res.set_header("X-Served-By-DB-Host", who->database_host);
    return admitted{std::move(*who), std::move(*pass)};
  }

  /// A job route: let the caller in, then run `handler`. The body is the body
  /// as received (any content type); a multipart body is read as no fields,
  /// as CARTO's Express did.
  template <class Handler>
  route_handler job_route(Handler handler) {
    return [this, handler](const httplib::Request& req,
                           httplib::Response& res) -> std::optional<parked> {
      std::string_view body = req.is_multipart_form_data() ? std::string_view{} : req.body;
      if (auto in = let_in(req, body, res))
        handler(req, body, res, in->who);
      return std::nullopt;
    };
  }

  /// The path's user group when `path` is a job route, else nullopt.
  std::optional<std::string> job_route_user(const std::string& path) const {
    if (which != routes::all)
      return std::nullopt;
    std::smatch m;
    for (const auto* re : {&job_collection_re, &job_item_re, &wip_re, &job_results_re})
      if (std::regex_match(path, m, *re))
        return m[1].str();
    return std::nullopt;
  }

  /// A body above the transport's limit, not read: answer as admit() would
  /// (unknown user first, then the payload message with the announced
  /// Content-Length).
  void too_large(const httplib::Request& req, httplib::Response& res) {
    auto path_user = job_route_user(req.path);
    if (!path_user) {
      write_error(res, 404, "Not found: " + req.method + " " + req.path);
      return;
    }
    auto user = user_of(*path_user, req.get_header_value("Host"), ctx.user_from_host);
    auto meta = ctx.meta.checkout();
    auto found = read_account(*meta, user, "");
    if (!found) {
      write_error(res, found.error());
      return;
    }
    if (!found->account) {
      write_error(res, 404, unknown_user_message(user));
      return;
    }
    auto n = req.get_header_value<uint64_t>("Content-Length");
    write_error(res, 400, payload_message(n, ctx.cfg.api_max_payload));
  }

  void ready(httplib::Response& res) {
    {
      auto c = ctx.batch.checkout();
      auto pong = c->command({"PING"});
      if (!pong) {
        write_error(res, pong.error());
        return;
      }
    }
    if (ctx.hooks.worker_not_ready) {
      auto why = ctx.hooks.worker_not_ready();
      if (!why.empty()) {
        write_error(res, 503, why);
        return;
      }
    }
    write_json(res, 200, {{"status", "ready"}});
  }

  void metrics_page(httplib::Response& res) {
    auto extra = redis_samples(ctx);
    auto gauge = [&extra](const char* name, const char* help, double value) {
      extra.push_back({name, "gauge", help, value});
    };
    gauge("batchq_http_connections", "HTTP connections open on this node's API.",
          static_cast<double>(http->connections()));
    gauge("batchq_http_threads", "Threads of this node's API: IO threads and handler pools.",
          static_cast<double>(http->threads()));
    gauge("batchq_http_job_threads_busy",
          "Threads running a job route's handler now (a parked long-poll runs on none).",
          static_cast<double>(http->busy_job_threads()));
    gauge("batchq_http_parked", "Requests parked without a thread (long-polls) on this node.",
          static_cast<double>(http->parked_now()));
    if (ctx.finals) {
      gauge("batchq_long_poll_subscribed",
            "Whether the API's long-polls are subscribed to batchq:jobs:final"
            " (else they read their job every 100 ms).",
            ctx.finals->connected() ? 1.0 : 0.0);
      gauge("batchq_long_polls_waiting", "GET ?wait= requests waiting for their job on this node.",
            static_cast<double>(ctx.finals->waiting()));
    }
    res.set_content(metrics::render(metrics::global(), extra), metrics_type);
  }

  static route_handler answer(std::function<void(httplib::Response&)> fn) {
    return [fn](const httplib::Request&, httplib::Response& res) -> std::optional<parked> {
      fn(res);
      return std::nullopt;
    };
  }

  transport_config config() {
    transport_config t;
    t.bind = ctx.cfg.http_bind;
    t.port = static_cast<uint16_t>(ctx.cfg.http_port);
    t.io_threads = which == routes::all ? 2 : 1;
    t.probe_threads = probe_threads;
    t.job_threads = which == routes::all ? api_threads : 0;
    t.max_job_threads = which == routes::all ? max_threads : 1;
    // The transport's own limit stays well above api.max-payload so that
    // admit() sees the body and answers in SPEC order; above it, too_large().
    auto max = static_cast<size_t>(ctx.cfg.api_max_payload);
    t.max_body = std::max<size_t>(max * 64, size_t{1} << 20);
    t.idle = std::chrono::seconds{keep_alive_idle_seconds};
    t.default_headers = cors_headers();
    t.not_found = [](const httplib::Request& req, httplib::Response& res) {
      write_error(res, 404, "Not found: " + req.method + " " + req.path);
      return std::optional<parked>{};
    };
    t.too_large = [this](const httplib::Request& req, httplib::Response& res) {
      too_large(req, res);
      return std::optional<parked>{};
    };
    auto& r = t.routes;
    // CORS preflight on any path: the default headers, no body.
    r.push_back({"OPTIONS", std::regex{".*"}, lane::inline_lane,
                 answer([](httplib::Response& res) { res.status = 200; })});
    r.push_back({"GET", std::regex{"/health"}, lane::inline_lane,
                 answer([](httplib::Response& res) { write_json(res, 200, {{"status", "ok"}}); })});
    r.push_back({"GET", std::regex{"/ready"}, lane::probes,
                 answer([this](httplib::Response& res) { ready(res); })});
    r.push_back({"GET", std::regex{"/metrics"}, lane::probes,
                 answer([this](httplib::Response& res) { metrics_page(res); })});
    if (which != routes::all)
      return t;
    ctx.finals = std::make_unique<final_watch>(
      redis::endpoint{ctx.cfg.redis_host, ctx.cfg.redis_port, ctx.cfg.redis_db},
      ctx.cfg.cluster_node_id);

    r.push_back({"POST", job_collection_re, lane::jobs,
                 job_route([this](auto& req, std::string_view body, auto& res, const caller& who) {
                   create_job(ctx, req, body, res, who);
                 })});
    r.push_back({"GET", job_collection_re, lane::jobs,
                 job_route([this](auto& req, std::string_view, auto& res, const caller& who) {
                   list_jobs(ctx, req, res, who);
                 })});
    // A read may park (?wait=): it keeps the caller's place until answered.
    r.push_back({"GET", job_item_re, lane::jobs,
                 [this](const httplib::Request& req,
                        httplib::Response& res) -> std::optional<parked> {
                   auto in = let_in(req, req.body, res);
                   if (!in)
                     return std::nullopt;
                   return get_job(ctx, req, res, in->who, req.matches[2].str(),
                                  std::move(in->pass));
                 }});
    r.push_back({"DELETE", job_item_re, lane::jobs,
                 job_route([this](auto& req, std::string_view, auto& res, const caller& who) {
                   cancel_job(ctx, req, res, who, req.matches[2].str());
                 })});
    r.push_back({"GET", wip_re, lane::jobs,
                 job_route([this](auto& req, std::string_view, auto& res, const caller& who) {
                   jobs_wip(ctx, req, res, who);
                 })});
    r.push_back({"GET", job_results_re, lane::jobs,
                 job_route([this](auto& req, std::string_view, auto& res, const caller& who) {
                   get_results(ctx, req, res, who, req.matches[2].str(), req.matches[3].str());
                 })});
    return t;
  }
};

server::server(const settings& s, routes r, node_hooks hooks)
  : impl_(std::make_unique<impl>(s, r, std::move(hooks))) {
}

server::~server() {
  stop();
}

caf::expected<uint16_t> server::start() {
  auto& st = *impl_;
  if (st.started)
    return st.port;
  st.http = std::make_unique<transport>(st.config());
  auto bound = st.http->start();
  const auto& host = st.ctx.cfg.http_bind;
  if (!bound) // the transport's reason (address in use, not local, cannot resolve)
    return make_error(ec::invalid_config, "cannot listen for HTTP on " + host + ":"
                                            + std::to_string(st.ctx.cfg.http_port) + ": "
                                            + message_of(bound.error()));
  st.port = *bound;
  st.started = true;
  log::info("http listening", {{"address", host},
                               {"port", std::to_string(st.port)},
                               {"routes", st.which == routes::all ? "all" : "probes"}});
  return st.port;
}

void server::stop() {
  auto& st = *impl_;
  if (!st.started || st.stopped)
    return;
  st.stopped = true;
  st.ctx.stop(); // long-polls answer now
  st.http->stop();
  log::info("http stopped", {{"port", std::to_string(st.port)}});
}

uint16_t server::port() const noexcept {
  return impl_->port;
}

} // namespace batchq::http
