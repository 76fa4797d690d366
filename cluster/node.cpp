#include "cluster/node.hpp"

#include <thread>

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/canceller.hpp"
#include "actors/cluster_gate.hpp"
#include "actors/coordination.hpp"
#include "actors/job_runner.hpp"
#include "actors/runner_pool.hpp"
#include "actors/scheduler.hpp"
#include "actors/status.hpp"
#include "src/ports/redis_result_store.hpp"
#include "actors/subscriber.hpp"
#include "actors/user_queue.hpp"
#include "cluster/node_directory.hpp"
#include "cluster/node_registry.hpp"
#include "messages/error.hpp"
#include "src/http/server.hpp"
#include "src/log/log.hpp"
#include "src/pg/cancel_registry.hpp"
#include "src/pg/pool.hpp"
#include "src/ports/pg_sql.hpp"
#include "src/ports/redis_coordination.hpp"
#include "src/ports/redis_job_environment.hpp"
#include "src/ports/redis_job_store.hpp"
#include "src/ports/redis_queue_index.hpp"
#include "src/redis/ops.hpp"

#ifndef BATCHQ_VERSION
#define BATCHQ_VERSION "0.0.0"
#endif

namespace batchq::cluster {

const char* version() {
  return BATCHQ_VERSION;
}

const char* to_string(node_mode m) {
  switch (m) {
    case node_mode::full: return "full";
    case node_mode::worker_only: return "worker-only";
    case node_mode::api_only: return "api-only";
  }
  return "?";
}

namespace {

/// How long start() waits for the subscriber's SUBSCRIBE before registering
/// anyway (the periodic rescan covers what it would miss).
constexpr std::chrono::milliseconds subscribe_wait{10000};
/// drain() waits shutdown-grace plus this for the scheduler's report.
constexpr std::chrono::milliseconds drain_margin{15000};
/// An HTTP DELETE waits this long for the canceller's answer.
constexpr std::chrono::seconds http_cancel_timeout{30};
/// /ready waits this long for the subscriber's answer.
constexpr std::chrono::seconds ready_timeout{2};

/// Every PostgreSQL connection of the node: bounds from postgres.result-grace.
pg::pool_config pool_config_of(const settings& s) {
  pg::pool_config c;
  c.session.result_grace = std::chrono::milliseconds{s.postgres_result_grace};
  return c;
}

redis::endpoint batch_endpoint(const settings& s) {
  return redis::endpoint{s.redis_host, s.redis_port, s.redis_db};
}

/// SPEC §4: rails:users, api_keys and (as CARTO reads them) limits:batch live
/// in the metadata DB 5, whatever redis.db is.
constexpr int metadata_db = 5;

redis::endpoint metadata_endpoint(const settings& s) {
  return redis::endpoint{s.redis_host, s.redis_port, metadata_db};
}

/// Sends exit to `h` (any handle type) if it is valid.
template <class Handle>
void exit_actor(Handle& h) {
  if (h)
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  h = Handle{};
}

} // namespace

// -- node ---------------------------------------------------------------------

struct node::impl {
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  std::shared_ptr<pg::pool> pool = std::make_shared<pg::pool>();
  /// Jobs the status actor claimed whose end a runner wrote (job_runner.hpp).
  std::shared_ptr<ports::ended_elsewhere> ended_elsewhere =
    std::make_shared<ports::ended_elsewhere>();
  std::shared_ptr<ports::pg_backend_cancel> backends;
  /// The runners waiting for a turn, and every runner made (worker only).
  std::shared_ptr<runner_pool> runners;
  status_actor status;
  coordination_actor coordination;
  canceller_actor canceller;
  cluster_gate_actor gate;
  scheduler_actor scheduler;
  subscriber_actor subscriber;
  std::unique_ptr<http::server> http;
  std::unique_ptr<node_registry> registration;
  bool published = false;
  bool stopped = false;
};

node::node(caf::actor_system& sys, settings s, node_mode mode)
  : sys_(sys), cfg_(std::move(s)), mode_(mode), impl_(std::make_unique<impl>()) {
}

node::~node() {
  stop();
}

caf::error node::start() {
  auto& st = *impl_;
  const auto& s = cfg_;
  auto ep = batch_endpoint(s);
  st.pool = std::make_shared<pg::pool>(pool_config_of(s));

  // One job environment (limits, passwords; thread-safe, cached) for every
  // runner and the pg_cancel_backend fallback.
  auto env = std::make_shared<ports::redis_job_environment>(metadata_endpoint(s),
                                                            s.batch_query_timeout);
  // pg_cancel_backend (thread-safe): the canceller's fallback, and the
  // user_queues' stop of an orphan's backends (SPEC §7 "Crash").
  st.backends = std::make_shared<ports::pg_backend_cancel>(ep, env, st.pool, s.postgres_port);

  // status: the single writer of job state, its own Redis connection.
  status_settings status_cfg;
  status_cfg.node_id = s.cluster_node_id;
  status_cfg.finished_jobs_ttl = s.batch_finished_jobs_ttl;
  status_cfg.ended_elsewhere = st.ended_elsewhere;
  st.status = spawn_status(sys_, status_cfg, std::make_shared<ports::redis_job_store>(ep));

  // canceller: this node's registry, other nodes through the middleman,
  // pg_cancel_backend when they cannot be reached.
  canceller_settings canceller_cfg;
  canceller_cfg.node_id = s.cluster_node_id;
  canceller_cfg.cluster_secret = s.cluster_secret;
  st.canceller = spawn_canceller(
    sys_, canceller_cfg, st.status, st.registry,
    std::make_shared<middleman_node_directory>(sys_, ep), st.backends);

  bool worker = mode_ != node_mode::api_only;
  if (worker)
    start_worker(env);

  // Other nodes (and `batchq cancel --direct`) reach this node through its
  // cluster gate only: it checks each message's proof, then asks the canceller.
  cluster_gate_settings gate_cfg;
  gate_cfg.node_id = s.cluster_node_id;
  gate_cfg.secret = s.cluster_secret;
  st.gate = spawn_cluster_gate(sys_, gate_cfg, st.canceller);
  auto port = sys_.middleman().publish(st.gate, s.cluster_port, s.cluster_bind.c_str(), true);
  if (!port)
    return make_error(ec::invalid_config, "cannot publish the cluster gate on " + s.cluster_bind
                                            + ":" + std::to_string(s.cluster_port) + ": "
                                            + sys_.render(port.error()));
  st.published = true;
  cluster_port_ = *port;

  // The HTTP API, before waiting for the subscriber: /health answers at once,
  // /ready says why the node is not ready yet.
  if (auto err = start_http())
    return err;

  // Register once the subscriber listens: a published job is then never missed.
  if (worker)
    wait_subscribed();

  node_info me;
  me.node_id = s.cluster_node_id;
  me.address = s.cluster_advertise;
  me.cluster_port = cluster_port_;
  me.http_port = http_port_;
  me.version = version();
  me.started_at = redis::iso8601_now();
  st.registration = std::make_unique<node_registry>(ep, me, heartbeat_period);
  // Redis down is not fatal (SPEC §7): the node keeps running and every
  // heartbeat retries the registration.
  if (auto err = st.registration->announce())
    log::warning("node not registered yet; retrying every heartbeat",
                 {{"error", message_of(err)}});
  return caf::none;
}

void node::start_worker(std::shared_ptr<ports::redis_job_environment> env) {
  auto& st = *impl_;
  const auto& s = cfg_;
  auto ep = batch_endpoint(s);
  // job runners: detached actors sharing the PostgreSQL pool, the
  // environment and the registry (the pool of runners below).
  runner_settings runner_cfg;
  runner_cfg.node_id = s.cluster_node_id;
  runner_cfg.postgres_port = s.postgres_port;
  runner_cfg.default_timeout_ms = s.batch_query_timeout;
  runner_cfg.results = std::make_shared<ports::redis_result_store>(ep);
  runner_cfg.results_limits.max_bytes = s.results_max_bytes;
  auto connector = std::make_shared<ports::pg_sql_connector>(st.pool);
  auto status = st.status;
  auto registry = st.registry;
  user_queue_deps deps;
  deps.status = st.status;
  deps.canceller = st.canceller;
  deps.backends = st.backends;
  // The runners (job_runner.hpp "Going on"): one serves each running turn,
  // claims its jobs and writes their ends over a Redis connection of its own,
  // and waits in the pool for the next turn when its turn ends, so no thread
  // is created per job (docs/performance.md "A runner per running turn").
  runner_cfg.rules.node_id = s.cluster_node_id;
  runner_cfg.rules.finished_jobs_ttl = s.batch_finished_jobs_ttl;
  runner_cfg.ended_elsewhere = st.ended_elsewhere;
  st.runners = std::make_shared<runner_pool>(
    [=](caf::actor_system& sys) {
      auto cfg = runner_cfg;
      cfg.store = std::make_shared<ports::redis_job_store>(ep);
      return spawn_job_runner(sys, cfg, status, env, connector, registry, true);
    },
    static_cast<size_t>(std::max<int64_t>(1, s.batch_max_running)));
  deps.runners_go_on = true;
  deps.make_runner = [runners = st.runners](caf::actor_system& sys) { return runners->take(sys); };
  deps.give_back = [runners = st.runners](job_runner_actor r) { runners->give(std::move(r)); };
  auto queue_cfg = user_queue_settings::from(s);
  user_queue_factory make_queue = [=](caf::actor_system& sys, turn_grant g,
                                      scheduler_actor sched, std::shared_ptr<turn_flags> flags) {
    return spawn_user_queue(sys, queue_cfg, std::move(g), sched, deps, std::move(flags));
  };

  // coordination: the scheduler's own Redis connection (renewals, hosts,
  // sweep, announcements), on its own thread; the scheduler never blocks.
  st.coordination =
    spawn_coordination(sys_, std::make_shared<ports::redis_coordination>(ep, metadata_db), true,
                       env);
  st.scheduler = spawn_scheduler(sys_, scheduler_settings::from(s), st.coordination,
                                 st.canceller, st.registry, make_queue);

  // subscriber: SUBSCRIBE batch:users + index rescans, reporting to the scheduler.
  st.subscriber = spawn_subscriber(sys_, subscriber_settings::from(s), st.scheduler,
                                   std::make_shared<ports::redis_queue_index>(ep));
}

caf::error node::start_http() {
  auto& st = *impl_;
  http::node_hooks hooks;
  auto* sys = &sys_;
  if (mode_ != node_mode::worker_only) {
    hooks.cancel = [sys, canceller = st.canceller](const std::string& job_id,
                                                   const std::string& user) {
      caf::scoped_actor self{*sys};
      caf::expected<cancel_result> out = cancel_result{};
      self->request(canceller, http_cancel_timeout, cancel_atom::value, job_id, user)
        .receive([&](const cancel_result& r) { out = r; },
                 [&](caf::error& e) { out = std::move(e); });
      return out;
    };
  }
  if (st.subscriber) {
    hooks.worker_not_ready = [sys, subscriber = st.subscriber] {
      caf::scoped_actor self{*sys};
      std::string why;
      self->request(subscriber, ready_timeout, ready_atom::value)
        .receive(
          [&](bool ready) {
            if (!ready)
              why = "the worker is not subscribed to batch:users yet (Redis unreachable?)";
          },
          [&](caf::error& e) { why = "the worker's subscriber did not answer: " + sys->render(e); });
      return why;
    };
  }
  st.http = std::make_unique<http::server>(
    cfg_, mode_ == node_mode::worker_only ? http::routes::probes_only : http::routes::all,
    std::move(hooks));
  auto port = st.http->start();
  if (!port)
    return std::move(port.error());
  http_port_ = *port;
  return caf::none;
}

void node::wait_subscribed() {
  auto& st = *impl_;
  caf::scoped_actor self{sys_};
  auto deadline = std::chrono::steady_clock::now() + subscribe_wait;
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    self->request(st.subscriber, std::chrono::seconds{2}, ready_atom::value)
      .receive([&](bool r) { ready = r; }, [&](caf::error&) {});
    if (!ready)
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  if (!ready)
    log::warning("subscriber not listening yet; registering anyway",
                 {{"waited_ms", std::to_string(subscribe_wait.count())}});
}

caf::error node::heartbeat() {
  if (!impl_->registration)
    return caf::none;
  return impl_->registration->heartbeat();
}

caf::expected<drain_report> node::drain() {
  auto& st = *impl_;
  if (!st.scheduler)
    return drain_report{};
  caf::scoped_actor self{sys_};
  auto timeout = std::chrono::milliseconds{cfg_.batch_shutdown_grace * 1000} + drain_margin;
  caf::expected<drain_report> out = drain_report{};
  self->request(st.scheduler, timeout, drain_atom::value)
    .receive([&](const drain_report& r) { out = r; }, [&](caf::error& e) { out = std::move(e); });
  return out;
}

void node::stop() {
  auto& st = *impl_;
  if (st.stopped)
    return;
  st.stopped = true;
  // First the HTTP server: no new cancel may reach a canceller about to exit.
  if (st.http)
    st.http->stop();
  if (st.registration) {
    if (auto err = st.registration->withdraw())
      log::warning("node registration not removed", {{"error", message_of(err)}});
    st.registration.reset();
  }
  if (st.published && st.gate)
    sys_.middleman().unpublish(st.gate, cluster_port_);
  exit_actor(st.gate);
  exit_actor(st.subscriber);
  exit_actor(st.scheduler);
  if (st.runners)
    st.runners->close();
  exit_actor(st.coordination);
  exit_actor(st.canceller);
  exit_actor(st.status);
}

// -- cancel_front ---------------------------------------------------------------

struct cancel_front::impl {
  status_actor status;
  canceller_actor canceller;
};

cancel_front::cancel_front(caf::actor_system& sys, const settings& s, std::string front_id)
  : sys_(sys), impl_(std::make_unique<impl>()) {
  auto ep = batch_endpoint(s);
  status_settings status_cfg;
  status_cfg.node_id = front_id;
  status_cfg.finished_jobs_ttl = s.batch_finished_jobs_ttl;
  impl_->status = spawn_status(sys_, status_cfg, std::make_shared<ports::redis_job_store>(ep));
  canceller_settings canceller_cfg;
  canceller_cfg.node_id = front_id;
  canceller_cfg.cluster_secret = s.cluster_secret;
  auto env = std::make_shared<ports::redis_job_environment>(metadata_endpoint(s),
                                                            s.batch_query_timeout);
  impl_->canceller = spawn_canceller(
    sys_, canceller_cfg, impl_->status, std::make_shared<pg::cancel_registry>(),
    std::make_shared<middleman_node_directory>(sys_, ep),
    std::make_shared<ports::pg_backend_cancel>(ep, env,
                                               std::make_shared<pg::pool>(pool_config_of(s)),
                                               s.postgres_port));
}

cancel_front::~cancel_front() {
  exit_actor(impl_->canceller);
  exit_actor(impl_->status);
}

caf::expected<cancel_result> cancel_front::cancel(const std::string& job_id,
                                                  const std::string& user,
                                                  std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys_};
  caf::expected<cancel_result> out = cancel_result{};
  self->request(impl_->canceller, timeout, cancel_atom::value, job_id, user)
    .receive([&](const cancel_result& r) { out = r; }, [&](caf::error& e) { out = std::move(e); });
  return out;
}

} // namespace batchq::cluster
