#include "cluster/bench/floor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "cluster/harness/harness.hpp"
#include "messages/error.hpp"
#include "messages/types.hpp"
#include "src/job/clock.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/job/status.hpp"
#include "src/pg/cancel_registry.hpp"
#include "src/pg/pool.hpp"
#include "src/ports/pg_sql.hpp"
#include "src/ports/redis_job_environment.hpp"
#include "src/ports/redis_job_store.hpp"
#include "src/redis/ops.hpp"

namespace batchq::bench {
namespace {

using harness::fatal;

struct shared {
  floor_config cfg;
  std::shared_ptr<ports::redis_job_environment> env;
  std::shared_ptr<ports::pg_sql_connector> sql;
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  std::atomic<int> jobs{0};
  std::atomic<uint64_t> round_trips{0};
  /// Wall time in each part, microseconds summed over the threads.
  std::atomic<int64_t> turn_us{0}, take_us{0}, statement_us{0}, give_us{0};
};

/// Adds the microseconds since `t0` to `into` and restarts `t0`.
void lap(std::atomic<int64_t>& into, std::chrono::steady_clock::time_point& t0) {
  auto t = std::chrono::steady_clock::now();
  into += std::chrono::duration_cast<std::chrono::microseconds>(t - t0).count();
  t0 = t;
}

field_pairs claim_fields() {
  return {{"status", "running"},
          {"node", "bench-floor"},
          {"updated_at", job::iso8601(std::chrono::system_clock::now())}};
}

/// One job, as the runner does it: decode, next statement, begin (the claim
/// started a simple job's step: a progress write only when the fields differ),
/// a pooled session, execute under an armed token, apply. Returns the final
/// write for the next turn step.
job_write run_one(shared& sh, ports::redis_job_store& store, const std::string& user,
                  const std::string& token, const job_ticket& t) {
  auto now = [] { return std::chrono::system_clock::now(); };
  auto j = job::decode(t.job_id, t.record);
  if (!j)
    fatal("floor: job " + t.job_id + " unreadable: " + j.error().message);
  std::map<std::string, std::string> stored(t.record.begin(), t.record.end());
  auto cap = sh.env->timeout_cap_ms(user);
  auto cap_ms = cap ? *cap : sh.cfg.default_timeout_ms;
  auto armed = sh.registry->arm(t.job_id, user, token);
  while (auto stmt = job::next_statement(*j, cap_ms)) {
    auto from = job::to_string(j->status);
    if (auto r = job::begin(*j, *stmt, now()); !r)
      fatal("floor: begin refused: " + r.error().message);
    auto f = job::state_fields(*j);
    bool same = std::all_of(f.set.begin(), f.set.end(),
                            [&](auto& kv) {
                              auto i = stored.find(kv.first);
                              return i != stored.end() && i->second == kv.second;
                            })
                && std::none_of(f.del.begin(), f.del.end(),
                                [&](auto& k) { return stored.count(k) > 0; });
    if (!same) {
      turn_request r;
      r.user = user;
      r.token = token;
      job_write w{t.job_id, from, token, job::to_string(j->status), write_kind::progress,
                  f.set, f.del};
      w.set.emplace_back("status", w.to_status);
      r.write.push_back(std::move(w));
      if (auto a = store.turn(r, {}, 0); !a)
        fatal("floor: progress write: " + message_of(a.error()));
      for (auto& [k, v] : f.set)
        stored[k] = v;
      for (auto& k : f.del)
        stored.erase(k);
    }
    auto password = sh.env->password(user, j->db.dbuser);
    if (!password || !*password)
      fatal("floor: no password for " + user);
    pg::pool_key key;
    key.host = j->db.host;
    key.dbname = j->db.dbname;
    key.role = j->db.dbuser;
    key.port = static_cast<uint16_t>(j->db.port.empty() ? sh.cfg.pg_port : std::stoi(j->db.port));
    auto t0 = std::chrono::steady_clock::now();
    auto sess = sh.sql->connect(key, **password);
    lap(sh.take_us, t0);
    if (!sess)
      fatal("floor: connect: " + message_of(sess.error()));
    auto res = (*sess)->execute(t.job_id, stmt->sql, stmt->timeout_ms, armed.get(),
                                stmt->templated, nullptr);
    lap(sh.statement_us, t0);
    sess->reset(); // back to the pool (its reset is sent now, read on the next take)
    lap(sh.give_us, t0);
    auto o = res && res->ok() ? job::outcome::success()
                              : job::outcome::failure(res ? res->error.message
                                                          : message_of(res.error()));
    if (auto r = job::apply(*j, *stmt, o, now()); !r)
      fatal("floor: apply refused: " + r.error().message);
  }
  sh.registry->disarm(t.job_id, armed.get());
  if (j->status != job::status::done)
    fatal("floor: job " + t.job_id + " ended " + job::to_string(j->status));
  auto f = job::state_fields(*j);
  job_write w{t.job_id, "running", token, job::to_string(j->status), write_kind::final,
              std::move(f.set), std::move(f.del)};
  w.set.emplace_back("status", w.to_status);
  return w;
}

/// One turn of `user`: claim, run, write the end with the next claim, until
/// the queue is empty.
void run_user(shared& sh, ports::redis_job_store& store, const std::string& user) {
  turn_request r;
  r.user = user;
  r.token = redis::random_token();
  // A capacity bucket of its own: the node's slots for 127.0.0.1 never make
  // a floor turn `full`.
  r.host = "bench-floor";
  r.slot = redis::random_token();
  r.capacity = sh.cfg.threads;
  r.lease_ttl_ms = 30000;
  r.part = turn_part::next;
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    auto a = store.turn(r, claim_fields(), 7200);
    lap(sh.turn_us, t0);
    if (!a)
      fatal("floor: turn of " + user + ": " + message_of(a.error()));
    r.write.clear();
    if (a->what == turn_outcome::empty || a->what == turn_outcome::released)
      return;
    if (a->what != turn_outcome::job)
      fatal("floor: unexpected turn answer for " + user + ": " + to_string(a->what));
    r.write.push_back(run_one(sh, store, user, r.token, a->jobs.front()));
    ++sh.jobs;
  }
}

} // namespace

floor_result run_floor(const floor_config& cfg, const std::vector<std::string>& users) {
  shared sh;
  sh.cfg = cfg;
  sh.env = std::make_shared<ports::redis_job_environment>(
    redis::endpoint{"127.0.0.1", cfg.redis_port, 5}, cfg.default_timeout_ms);
  sh.sql = std::make_shared<ports::pg_sql_connector>(std::make_shared<pg::pool>());
  auto t0 = harness::clock_type::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.threads; ++t)
    threads.emplace_back([&, t] {
      ports::redis_job_store store{redis::endpoint{"127.0.0.1", cfg.redis_port, cfg.redis_db}};
      for (size_t i = static_cast<size_t>(t); i < users.size();
           i += static_cast<size_t>(cfg.threads))
        run_user(sh, store, users[i]);
      sh.round_trips += store.round_trips();
    });
  for (auto& t : threads)
    t.join();
  floor_result out;
  out.seconds = harness::seconds_since(t0);
  out.jobs = sh.jobs.load();
  out.redis_round_trips = sh.round_trips.load();
  out.turn_us = sh.turn_us.load();
  out.take_us = sh.take_us.load();
  out.statement_us = sh.statement_us.load();
  out.give_us = sh.give_us.load();
  return out;
}

} // namespace batchq::bench
