#include "src/redis/ops.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <uuid/uuid.h>

#include "src/redis/detail.hpp"
#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"

namespace batchq::redis {

namespace {

std::string str(std::string_view x) { return std::string{x}; }

using detail::add_if_missing;
using detail::append_pairs;
using detail::run;
using detail::to_map;
using detail::unexpected;

caf::expected<std::vector<std::string>> strings(caf::expected<reply> r) {
  if (!r)
    return std::move(r.error());
  std::vector<std::string> out;
  out.reserve(r->elements.size());
  for (auto& e : r->elements)
    out.push_back(std::move(e.str));
  return out;
}


} // namespace

std::string random_token() {
  uuid_t id;
  uuid_generate_random(id);
  char buf[37];
  uuid_unparse_lower(id, buf);
  return std::string{buf};
}

std::string iso8601_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(millis / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis % 1000));
  return buf;
}

// -- jobs ---------------------------------------------------------------------

caf::expected<int64_t> create_job(client& c, const std::string& job_id, const std::string& user,
                                  field_list fields, int64_t max_queued) {
  create_options opts;
  opts.max_queued = max_queued;
  auto r = create_job(c, job_id, user, std::move(fields), opts);
  if (!r)
    return std::move(r.error());
  return r->queue_length;
}

caf::expected<create_outcome> create_job(client& c, const std::string& job_id,
                                         const std::string& user, field_list fields,
                                         const create_options& opts) {
  using namespace std::chrono;
  auto created_ms = opts.created_ms > 0
                      ? opts.created_ms
                      : duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto now = iso8601_now();
  add_if_missing(fields, "created_at", now);
  add_if_missing(fields, "updated_at", now);
  auto ttl = std::max<int64_t>(1, opts.idempotency_ttl.count());
  std::vector<std::string> args{job_id,
                                user,
                                std::to_string(opts.max_queued),
                                str(keys::users_channel),
                                std::to_string(created_ms),
                                str(keys::job_prefix),
                                std::to_string(ttl)};
  append_pairs(args, fields);
  std::vector<std::string> ks{keys::job(job_id), keys::queue(user), str(keys::queue_index),
                              keys::user_jobs(user)};
  if (!opts.idempotency_key.empty())
    ks.push_back(keys::idempotency(user, opts.idempotency_key));
  const auto& s = scripts::job_create;
  auto r = run(c, s, ks, args);
  if (!r)
    return std::move(r.error());
  create_outcome out;
  if (r->is_integer()) {
    out.created = true;
    out.job_id = job_id;
    out.queue_length = r->integer;
    return out;
  }
  if (r->is_array() && r->elements.size() == 2 && r->elements[0].is_string()
      && r->elements[1].is_array()) {
    out.created = false;
    out.job_id = std::move(r->elements[0].str);
    if (!r->elements[1].elements.empty())
      out.original = to_map(r->elements[1]);
    return out;
  }
  return unexpected(s, *r);
}

caf::expected<job_page> list_jobs(client& c, const std::string& user, int64_t limit,
                                  const std::string& cursor,
                                  const std::vector<std::string>& statuses, int64_t budget) {
  std::vector<std::string> args{str(keys::job_prefix), std::to_string(std::max<int64_t>(1, limit)),
                                cursor, std::to_string(std::max<int64_t>(1, budget))};
  args.insert(args.end(), statuses.begin(), statuses.end());
  const auto& s = scripts::job_list;
  auto r = run(c, s, {keys::user_jobs(user)}, args);
  if (!r)
    return std::move(r.error());
  if (!r->is_array() || r->elements.empty() || r->elements.size() % 2 != 1
      || !r->elements[0].is_string())
    return unexpected(s, *r);
  job_page page;
  if (!r->elements[0].str.empty())
    page.next = std::move(r->elements[0].str);
  for (size_t i = 1; i + 1 < r->elements.size(); i += 2) {
    const auto& hash = r->elements[i + 1];
    if (!hash.is_array())
      return unexpected(s, *r);
    page.jobs.emplace_back(std::move(r->elements[i].str), to_map(hash));
  }
  return page;
}

caf::expected<cancel_outcome> cancel_pending_job(client& c, const std::string& job_id,
                                                 const std::string& user, field_list fields,
                                                 int64_t ttl_seconds) {
  add_if_missing(fields, "updated_at", iso8601_now());
  std::vector<std::string> args{job_id, user, std::to_string(ttl_seconds)};
  append_pairs(args, fields);
  const auto& s = scripts::job_cancel_pending;
  auto r = run(c, s,
               {keys::job(job_id), keys::queue(user), str(keys::queue_index),
                keys::wip_user(user), str(keys::wip_users), keys::cancel_mark(job_id)},
               args);
  if (!r)
    return std::move(r.error());
  cancel_outcome out;
  if (r->is_integer() && r->integer == 1)
    out.cancelled = true;
  else if (r->is_string())
    out.status = std::move(r->str);
  else if (r->is_array() && r->elements.size() == 2 && r->elements[0].is_string()
           && r->elements[1].is_string()) {
    out.status = std::move(r->elements[0].str);
    out.node = std::move(r->elements[1].str);
  } else
    return unexpected(s, *r);
  return out;
}

caf::expected<std::optional<field_map>> read_job(client& c, const std::string& job_id) {
  auto r = c.command({"HGETALL", keys::job(job_id)});
  if (!r)
    return std::move(r.error());
  if (r->elements.empty())
    return std::optional<field_map>{};
  return std::optional<field_map>{to_map(*r)};
}

// -- indexes and work in progress --------------------------------------------

caf::expected<std::vector<std::string>> queued_users(client& c) {
  return strings(c.command({"SMEMBERS", str(keys::queue_index)}));
}

caf::expected<std::vector<std::string>> scan_keys(client& c, const std::string& pattern,
                                                  const std::string& type) {
  std::vector<std::string> argv{"SCAN", "0", "MATCH", pattern, "COUNT", "1000"};
  if (!type.empty()) {
    argv.push_back("TYPE");
    argv.push_back(type);
  }
  std::vector<std::string> found;
  do {
    auto r = c.command(argv);
    if (!r)
      return std::move(r.error());
    if (!r->is_array() || r->elements.size() != 2)
      return make_error(ec::redis_error, "unexpected SCAN reply: " + r->to_string());
    argv[1] = r->elements[0].str; // the next cursor; "0" when the scan is complete
    for (const auto& k : r->elements[1].elements)
      found.push_back(k.str);
  } while (argv[1] != "0");
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

caf::expected<std::vector<std::string>> scan_queue_users(client& c) {
  auto queues = scan_keys(c, str(keys::queue_prefix) + "*", "list");
  if (!queues)
    return std::move(queues.error());
  // The keys are sorted and share the prefix, so the users come out sorted
  // and each once.
  std::vector<std::string> users;
  for (const auto& k : *queues)
    if (auto u = keys::user_of_queue(k))
      users.push_back(std::move(*u));
  return users;
}

caf::expected<std::vector<std::string>> rebuild_queue_index(client& c) {
  auto users = scan_queue_users(c);
  if (!users || users->empty())
    return users;
  std::vector<std::string> argv{"SADD", str(keys::queue_index)};
  argv.insert(argv.end(), users->begin(), users->end());
  if (auto r = c.command(argv); !r)
    return std::move(r.error());
  return users;
}

caf::expected<std::vector<std::string>> queued_job_ids(client& c, const std::string& user) {
  return strings(c.command({"LRANGE", keys::queue(user), "0", "-1"}));
}

caf::expected<std::vector<std::string>> wip_users(client& c) {
  return strings(c.command({"SMEMBERS", str(keys::wip_users)}));
}

caf::expected<std::vector<std::string>> wip_job_ids(client& c, const std::string& user) {
  return strings(c.command({"LRANGE", keys::wip_user(user), "0", "-1"}));
}

caf::expected<std::vector<std::string>> wip_orphans(client& c) {
  const auto& s = scripts::wip_orphans;
  return strings(run(c, s, {str(keys::wip_users)},
                     {str(keys::lock_user_prefix), str(keys::wip_user_prefix)}));
}

// -- user lease ----------------------------------------------------------------

caf::expected<std::optional<std::string>> lease_holder(client& c, const std::string& user) {
  auto r = c.command({"GET", keys::lock_user(user)});
  if (!r)
    return std::move(r.error());
  if (r->is_nil())
    return std::optional<std::string>{};
  return std::optional<std::string>{std::move(r->str)};
}

} // namespace batchq::redis
