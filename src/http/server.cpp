#include "src/http/server.hpp"

#include <algorithm>
#include <thread>

#include <httplib.h>

#include "messages/error.hpp"
#include "src/http/auth.hpp"
#include "src/http/context.hpp"
#include "src/http/errors.hpp"
#include "src/http/jobs.hpp"
#include "src/http/results.hpp"
#include "src/http/task_pool.hpp"
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
  httplib::Server svr;
  std::thread listener;
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

  /// A job route: let the caller in, then run `handler`.
  template <class Handler>
  httplib::Server::Handler job_route(Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (auto in = let_in(req, req.body, res))
        handler(req, res, in->who, in->pass);
    };
  }

  /// The job route of a POST: the route reads the body itself. httplib reads a
  /// form-encoded body only up to its compiled-in 8,192 bytes
  /// (CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH, fixed in the Debian
  /// library) and parses it into params nobody uses; a content reader gets the
  /// body as received, any content type, up to httplib's payload limit.
  template <class Handler>
  httplib::Server::HandlerWithContentReader body_route(Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& read) {
      std::string body;
      bool ok = true;
      if (req.is_multipart_form_data()) // read as before: no fields (as CARTO's Express)
        ok = read([](const httplib::MultipartFormData&) { return true; },
                  [](const char*, size_t) { return true; });
      else
        ok = read([&body](const char* data, size_t n) {
          body.append(data, n);
          return true;
        });
      if (!ok && res.status == 413) { // above httplib's payload limit
        too_large(req, res);
        return;
      }
      if (!ok) {
        write_error(res, 400, "the request body could not be read");
        return;
      }
      if (auto in = let_in(req, body, res))
        handler(req, body, res, in->who);
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

  /// httplib refused a body above its own limit (413) before any handler ran:
  /// answer as admit() would (unknown user first, then the payload message
  /// with the announced Content-Length).
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

  void install() {
    svr.new_task_queue = [n = which == routes::all ? api_threads : probe_threads] {
      return new elastic_pool(n, max_threads);
    };
    // An idle keep-alive connection holds a thread: close it soon.
    svr.set_keep_alive_timeout(keep_alive_idle_seconds);
    // httplib's own limit stays well above api.max-payload so that admit()
    // sees the body and answers in SPEC order; above it, too_large() does.
    auto max = static_cast<size_t>(ctx.cfg.api_max_payload);
    svr.set_payload_max_length(std::max<size_t>(max * 64, size_t{1} << 20));
    svr.set_default_headers(cors_headers());
    // httplib writes headers and body separately; with Nagle's algorithm on,
    // a keep-alive client's delayed ACK stalls every answer (~27 ms measured
    // with scripts/bench-api: 297 req/s on 8 connections for GET /health).
    svr.set_tcp_nodelay(true);
    // httplib closes a keep-alive connection after 5 requests by default;
    // clients that poll (?wait=, watch) or submit in bulk would reconnect
    // all the time.
    svr.set_keep_alive_max_count(1000);

    svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (req.method != "OPTIONS")
        return httplib::Server::HandlerResponse::Unhandled;
      res.status = 200; // CORS preflight: the default headers, no body
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler(httplib::Server::HandlerWithResponse{[this](const httplib::Request& req,
                                                                      httplib::Response& res) {
      if (res.status == 413) {
        too_large(req, res);
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!res.body.empty())
        return httplib::Server::HandlerResponse::Unhandled; // a handler's own answer
      if (res.status == 404)
        write_error(res, 404, "Not found: " + req.method + " " + req.path);
      else
        write_error(res, res.status, "Bad request");
      return httplib::Server::HandlerResponse::Handled;
    }});
    svr.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("http handler failed", {{"method", req.method}, {"path", req.path},
                                           {"error", what}});
        write_error(res, 500, "internal error: " + what);
      });
    // Paths only: a query string may carry an api_key (SPEC §10).
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      log::debug("http request", {{"method", req.method},
                                  {"path", req.path},
                                  {"status", std::to_string(res.status)}});
    });

    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      write_json(res, 200, {{"status", "ok"}});
    });
    svr.Get("/ready", [this](const httplib::Request&, httplib::Response& res) { ready(res); });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      auto extra = redis_samples(ctx);
      if (ctx.finals) {
        extra.push_back({"batchq_long_poll_subscribed", "gauge",
                         "Whether the API's long-polls are subscribed to batchq:jobs:final"
                         " (else they read their job every 100 ms).",
                         ctx.finals->connected() ? 1.0 : 0.0});
        extra.push_back({"batchq_long_polls_waiting", "gauge",
                         "GET ?wait= requests waiting for their job on this node.",
                         static_cast<double>(ctx.finals->waiting())});
      }
      res.set_content(metrics::render(metrics::global(), extra), metrics_type);
    });
    if (which != routes::all)
      return;
    ctx.finals = std::make_unique<final_watch>(
      redis::endpoint{ctx.cfg.redis_host, ctx.cfg.redis_port, ctx.cfg.redis_db},
      ctx.cfg.cluster_node_id);

    svr.Post(job_collection,
             body_route([this](auto& req, std::string_view body, auto& res, const caller& who) {
               create_job(ctx, req, body, res, who);
             }));
    svr.Get(job_collection, job_route([this](auto& req, auto& res, const caller& who, auto&) {
              list_jobs(ctx, req, res, who);
            }));
    svr.Get(job_item,
            job_route([this](auto& req, auto& res, const caller& who, user_gate::pass& pass) {
              get_job(ctx, req, res, who, req.matches[2].str(), pass);
            }));
    svr.Delete(job_item, job_route([this](auto& req, auto& res, const caller& who, auto&) {
                 cancel_job(ctx, req, res, who, req.matches[2].str());
               }));
    svr.Get(wip_path, job_route([this](auto& req, auto& res, const caller& who, auto&) {
              jobs_wip(ctx, req, res, who);
            }));
    svr.Get(job_results, job_route([this](auto& req, auto& res, const caller& who, auto&) {
              get_results(ctx, req, res, who, req.matches[2].str(), req.matches[3].str());
            }));
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
  st.install();
  const auto& host = st.ctx.cfg.http_bind;
  auto want = st.ctx.cfg.http_port;
  int bound = 0;
  if (want == 0)
    bound = st.svr.bind_to_any_port(host);
  else
    bound = st.svr.bind_to_port(host, want) ? want : -1;
  if (bound <= 0)
    return make_error(ec::invalid_config, "cannot listen for HTTP on " + host + ":"
                                            + std::to_string(want)
                                            + " (address in use or not local?)");
  st.port = static_cast<uint16_t>(bound);
  st.started = true;
  st.listener = std::thread{[&svr = st.svr] { svr.listen_after_bind(); }};
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
  st.svr.stop();
  if (st.listener.joinable())
    st.listener.join(); // httplib joins its handler threads before listen returns
  log::info("http stopped", {{"port", std::to_string(st.port)}});
}

uint16_t server::port() const noexcept {
  return impl_->port;
}

} // namespace batchq::http
