#include "src/http/jobs.hpp"

#include <cmath>
#include <cstdlib>
#include <random>
#include <regex>

#include "messages/error.hpp"
#include "src/http/errors.hpp"
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "src/job/response.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"

namespace batchq::http {

namespace {

using namespace std::chrono;

std::string not_found(const std::string& id) {
  return "Job with id " + id + " not found";
}

/// The job of `fields` as a response body; a record that cannot be read is a
/// 500 naming the job.
bool write_job(httplib::Response& res, int status, const std::string& id,
               const redis::field_map& fields) {
  auto j = job::decode(id, job::record(fields.begin(), fields.end()));
  if (!j) {
    log::error("job record unreadable", {{"job_id", id}, {"error", j.error().message}});
    write_error(res, 500, "Job with id " + id + " cannot be read: " + j.error().message);
    return false;
  }
  write_json(res, status, job::to_response(*j));
  return true;
}

bool is_final_status(const std::string& s) {
  auto st = job::parse_status(s);
  return st && job::is_final(*st);
}

} // namespace

std::optional<redis::field_map> read_own_job(context& ctx, httplib::Response& res,
                                             const std::string& id, const std::string& user) {
  auto c = ctx.batch.checkout();
  auto r = redis::read_job(*c, id);
  if (!r) {
    write_error(res, r.error());
    return std::nullopt;
  }
  if (!*r || (*r)->count("user") == 0 || (*r)->at("user") != user) {
    write_error(res, 404, not_found(id));
    return std::nullopt;
  }
  return std::move(**r);
}

// -- parameters -----------------------------------------------------------------

parsed<milliseconds> parse_wait(const std::string& text) {
  static const std::regex number{R"(^(\d+(\.\d*)?|\.\d+)$)"};
  parsed<milliseconds> out;
  if (!std::regex_match(text, number)) {
    out.error = "wait must be a number of seconds from 0 to 60 (fractions allowed), got '" + text
                + "'";
    return out;
  }
  double secs = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(secs) || secs > 60)
    secs = 60;
  out.value = milliseconds{static_cast<int64_t>(std::llround(secs * 1000))};
  return out;
}

parsed<int64_t> parse_limit(const std::string& text) {
  parsed<int64_t> out;
  bool digits = !text.empty() && text.size() <= 3;
  for (char c : text)
    digits = digits && c >= '0' && c <= '9';
  auto v = digits ? std::stoll(text) : 0;
  if (!digits || v < 1 || v > max_limit) {
    out.error = "limit must be an integer from 1 to " + std::to_string(max_limit) + ", got '"
                + text + "'";
    return out;
  }
  out.value = v;
  return out;
}

parsed<std::vector<std::string>> parse_statuses(const std::string& text) {
  parsed<std::vector<std::string>> out;
  std::vector<std::string> list;
  size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      if (!job::parse_status(item)) {
        out.error = "status must be a comma-separated list of pending, running, done, failed, "
                    "cancelled, skipped, unknown; got '" + text + "'";
        return out;
      }
      list.push_back(item);
    }
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  out.value = std::move(list);
  return out;
}

bool valid_cursor(const std::string& text) {
  // A member of keys::user_jobs: 15 digits, ':', the job id.
  if (text.size() < 17 || text.size() > 15 + 1 + 128 || text[15] != ':')
    return false;
  for (size_t i = 0; i < 15; ++i)
    if (text[i] < '0' || text[i] > '9')
      return false;
  for (size_t i = 16; i < text.size(); ++i)
    if (static_cast<unsigned char>(text[i]) <= ' ' || static_cast<unsigned char>(text[i]) >= 127)
      return false;
  return true;
}

bool valid_idempotency_key(const std::string& text) {
  if (text.empty() || text.size() > 255)
    return false;
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      return false;
  return true;
}

// -- routes ---------------------------------------------------------------------

void create_job(context& ctx, const httplib::Request& req, std::string_view body,
                httplib::Response& res, const caller& who) {
  std::string idem;
  if (req.has_header("Idempotency-Key")) {
    idem = req.get_header_value("Idempotency-Key");
    if (!valid_idempotency_key(idem)) {
      write_error(res, 400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
      return;
    }
  }
  auto request =
    job::parse_request(body, req.get_header_value("Content-Type"), url_query(req));
  if (!request) {
    write_error(res, 400, request.error().message);
    return;
  }
  // Where the job runs; no password is stored (the runner looks it up).
  job::db_target db;
  db.host = who.database_host.empty() ? "127.0.0.1" : who.database_host;
  db.port = std::to_string(who.database_port.value_or(ctx.cfg.postgres_port));
  db.dbname = who.database_name;
  db.dbuser = who.database_role;

  auto now = system_clock::now();
  redis::create_options opts;
  opts.max_queued = ctx.cfg.batch_max_queued_jobs;
  opts.created_ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
  opts.idempotency_key = idem;
  opts.idempotency_ttl = idempotency_ttl;

  job::job j;
  auto attempt_create = [&] {
    j = job::make_job(*request, redis::random_token(), who.user, db, now);
    auto rec = job::encode(j);
    auto c = ctx.batch.checkout();
    return redis::create_job(*c, j.job_id, who.user, redis::field_list(rec.begin(), rec.end()),
                             opts);
  };
  auto created = attempt_create();
  // A random UUID colliding (job_exists) is all but impossible; retry anyway.
  for (int attempt = 1; attempt < 3 && !created && is(created.error(), ec::job_exists); ++attempt)
    created = attempt_create();
  if (!created) {
    write_error(res, created.error());
    return;
  }
  if (!created->created) {
    if (!created->original) {
      write_error(res, 409,
                  "Idempotency-Key '" + idem + "' was used for job " + created->job_id
                    + ", which no longer exists");
      return;
    }
    write_job(res, 200, created->job_id, *created->original);
    return;
  }
  metrics::global().jobs_created.fetch_add(1, std::memory_order_relaxed);
  log::info("job created", {{"job_id", j.job_id},
                            {"user", who.user},
                            {"shape", job::to_string(j.shape)},
                            {"steps", std::to_string(j.steps.size())},
                            {"queued", std::to_string(created->queue_length)}});
  write_json(res, 201, job::to_response(j));
}

std::optional<parked> get_job(context& ctx, const httplib::Request& req, httplib::Response& res,
                              const caller& who, const std::string& job_id,
                              user_gate::pass pass) {
  milliseconds wait{0};
  if (req.has_param("wait")) {
    auto w = parse_wait(req.get_param_value("wait"));
    if (!w.value) {
      write_error(res, 400, w.error);
      return std::nullopt;
    }
    wait = *w.value;
  }
  auto fields = read_own_job(ctx, res, job_id, who.user);
  if (!fields)
    return std::nullopt;
  auto status = fields->count("status") ? fields->at("status") : std::string{};
  if (wait.count() == 0 || is_final_status(status)) {
    write_job(res, 200, job_id, *fields);
    return std::nullopt;
  }
  if (!pass.begin_wait()) {
    write_error(res, 429, "Too many waiting requests for user '" + who.user + "' (at most "
                            + std::to_string(ctx.gate.max_waits())
                            + " ?wait= at once); retry when one has been answered");
    return std::nullopt;
  }
  // Long-poll (docs/http-api.md "Waiting"): parked without a thread until the
  // job's id is announced final on batchq:jobs:final, reading its status only
  // then, every final_watch::safety_poll anyway, and every 100 ms while the
  // subscription is down. No Redis connection is held while parked; the
  // user's place (pass) is held until the answer.
  struct waiting {
    std::unique_ptr<final_watch::interest> interest;
    user_gate::pass pass;
  };
  auto w = std::make_shared<waiting>(waiting{ctx.finals->watch(job_id), std::move(pass)});
  parked p;
  p.deadline = steady_clock::now() + wait;
  p.arm = [w](std::function<void()> wake) { w->interest->on_wake(std::move(wake)); };
  // The safety read at 2 s +- 25 %: requests parked together (a client's
  // burst) do not all look at once every 2 s.
  p.pause = [&ctx] {
    if (!ctx.finals->connected())
      return milliseconds{100};
    thread_local std::minstd_rand jitter{std::random_device{}()};
    auto quarter = final_watch::safety_poll.count() / 4;
    return milliseconds{final_watch::safety_poll.count() - quarter
                        + static_cast<int64_t>(jitter() % static_cast<uint64_t>(2 * quarter + 1))};
  };
  p.look = [&ctx, w, job_id, user = who.user](httplib::Response& out, bool last) {
    if (!last && !ctx.stopping()) {
      auto c = ctx.batch.checkout();
      auto r = c->command({"HGET", redis::keys::job(job_id), "status"});
      if (!r) {
        write_error(out, r.error());
        return true;
      }
      if (!r->is_nil() && !is_final_status(r->str))
        return false; // wait on
    }
    // Final, gone (404 below), out of time or stopping: the job as it is.
    auto now = read_own_job(ctx, out, job_id, user);
    if (now)
      write_job(out, 200, job_id, *now);
    return true;
  };
  // The first look after registering closes the gap since the read above.
  if (p.look(res, false))
    return std::nullopt;
  return p;
}

void cancel_job(context& ctx, const httplib::Request&, httplib::Response& res,
                const caller& who, const std::string& job_id) {
  if (!ctx.hooks.cancel) {
    write_error(res, 503, "this node cannot cancel jobs");
    return;
  }
  auto r = ctx.hooks.cancel(job_id, who.user);
  if (!r) {
    if (is(r.error(), ec::job_not_found))
      write_error(res, 404, not_found(job_id));
    else
      write_error(res, r.error());
    return;
  }
  auto fields = read_own_job(ctx, res, job_id, who.user);
  if (!fields)
    return;
  write_job(res, 200, job_id, *fields);
}

void list_jobs(context& ctx, const httplib::Request& req, httplib::Response& res,
               const caller& who) {
  int64_t limit = default_limit;
  if (req.has_param("limit")) {
    auto l = parse_limit(req.get_param_value("limit"));
    if (!l.value) {
      write_error(res, 400, l.error);
      return;
    }
    limit = *l.value;
  }
  std::string cursor;
  if (req.has_param("cursor")) {
    cursor = req.get_param_value("cursor");
    if (!cursor.empty() && !valid_cursor(cursor)) {
      write_error(res, 400, "cursor must be a `next` value of an earlier page, got '" + cursor
                              + "'");
      return;
    }
  }
  std::vector<std::string> statuses;
  if (req.has_param("status")) {
    auto s = parse_statuses(req.get_param_value("status"));
    if (!s.value) {
      write_error(res, 400, s.error);
      return;
    }
    statuses = std::move(*s.value);
  }
  auto page = [&] {
    auto c = ctx.batch.checkout();
    return redis::list_jobs(*c, who.user, limit, cursor, statuses);
  }();
  if (!page) {
    write_error(res, page.error());
    return;
  }
  auto jobs = nlohmann::ordered_json::array();
  for (const auto& [id, fields] : page->jobs) {
    auto j = job::decode(id, job::record(fields.begin(), fields.end()));
    if (!j || j->user != who.user) {
      log::warning("job left out of a list", {{"job_id", id},
                                              {"user", who.user},
                                              {"error", j ? "another user's job"
                                                          : j.error().message}});
      continue;
    }
    jobs.push_back(job::to_response(*j));
  }
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body["jobs"] = std::move(jobs);
  body["next"] = page->next ? nlohmann::ordered_json(*page->next) : nlohmann::ordered_json();
  write_json(res, 200, body);
}

void jobs_wip(context& ctx, const httplib::Request&, httplib::Response& res, const caller& who) {
  auto ids = [&] {
    auto c = ctx.batch.checkout();
    return redis::wip_job_ids(*c, who.user);
  }();
  if (!ids) {
    write_error(res, ids.error());
    return;
  }
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body[who.user] = *ids;
  write_json(res, 200, body);
}

} // namespace batchq::http
