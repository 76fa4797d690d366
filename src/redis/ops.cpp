#include "src/redis/ops.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <uuid/uuid.h>

#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"

namespace batchq::redis {

namespace {

std::string str(std::string_view x) { return std::string{x}; }

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

/// The text after "<CODE> " in a script error reply.
std::string detail(const std::string& text, std::string_view code) {
  return text.size() > code.size() + 1 ? text.substr(code.size() + 1) : std::string{};
}

/// Maps the error replies our scripts return ("CODE detail") to batchq codes;
/// other errors pass through unchanged.
caf::error map_script_error(caf::error err) {
  if (!is(err, ec::redis_error))
    return err;
  auto text = message_of(err);
  if (starts_with(text, "LEASE_LOST"))
    return make_error(ec::lease_lost, "lease of user " + detail(text, "LEASE_LOST")
                                        + " is not held by this token");
  if (starts_with(text, "JOB_NOT_FOUND"))
    return make_error(ec::job_not_found, "Job with id " + detail(text, "JOB_NOT_FOUND")
                                           + " not found");
  if (starts_with(text, "QUEUE_FULL"))
    return make_error(ec::queue_full, "Failed to create job. Max number of jobs ("
                                        + detail(text, "QUEUE_FULL") + ") queued reached");
  if (starts_with(text, "JOB_EXISTS"))
    return make_error(ec::job_exists, "Job with id " + detail(text, "JOB_EXISTS")
                                        + " already exists");
  if (starts_with(text, "STATUS_CHANGED"))
    return make_error(ec::invalid_transition,
                      "job status is now " + detail(text, "STATUS_CHANGED"));
  return err;
}

caf::expected<reply> run(client& c, const script& s, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args) {
  auto r = c.eval(s, keys, args);
  if (!r)
    return map_script_error(std::move(r.error()));
  return r;
}

caf::error unexpected(const script& s, const reply& r) {
  return make_error(ec::redis_error,
                    "unexpected reply from script " + str(s.name) + ": " + r.to_string());
}

bool has_field(const field_list& fields, std::string_view name) {
  return std::any_of(fields.begin(), fields.end(),
                     [&](const auto& kv) { return kv.first == name; });
}

void add_if_missing(field_list& fields, std::string_view name, const std::string& value) {
  if (!has_field(fields, name))
    fields.emplace_back(str(name), value);
}

void append_pairs(std::vector<std::string>& args, const field_list& fields) {
  for (const auto& [k, v] : fields) {
    args.push_back(k);
    args.push_back(v);
  }
}

field_map to_map(const reply& flat) {
  field_map out;
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2)
    out[flat.elements[i].str] = flat.elements[i + 1].str;
  return out;
}

caf::expected<std::vector<std::string>> strings(caf::expected<reply> r) {
  if (!r)
    return std::move(r.error());
  std::vector<std::string> out;
  out.reserve(r->elements.size());
  for (auto& e : r->elements)
    out.push_back(std::move(e.str));
  return out;
}

std::string ms(std::chrono::milliseconds x) { return std::to_string(x.count()); }

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

caf::expected<std::optional<dequeued_job>> dequeue_job(client& c, const std::string& user,
                                                       const std::string& lease_token,
                                                       const field_list& claim_fields) {
  std::vector<std::string> args{user, lease_token, str(keys::job_prefix)};
  append_pairs(args, claim_fields);
  const auto& s = scripts::job_dequeue;
  auto r = run(c, s,
               {keys::queue(user), str(keys::queue_index), keys::wip_user(user),
                str(keys::wip_users), keys::lock_user(user)},
               args);
  if (!r)
    return std::move(r.error());
  if (r->is_nil())
    return std::optional<dequeued_job>{};
  if (!r->is_array() || r->elements.size() != 2 || !r->elements[1].is_array())
    return unexpected(s, *r);
  dequeued_job out{std::move(r->elements[0].str), to_map(r->elements[1])};
  return std::optional<dequeued_job>{std::move(out)};
}

caf::expected<int64_t> requeue_job(client& c, const std::string& job_id, const std::string& user,
                                   const std::string& lease_token, field_list fields,
                                   const std::vector<std::string>& remove_fields) {
  add_if_missing(fields, "updated_at", iso8601_now());
  std::vector<std::string> args{job_id, user, lease_token, str(keys::users_channel),
                                std::to_string(remove_fields.size())};
  args.insert(args.end(), remove_fields.begin(), remove_fields.end());
  append_pairs(args, fields);
  const auto& s = scripts::job_requeue;
  auto r = run(c, s,
               {keys::job(job_id), keys::queue(user), str(keys::queue_index),
                keys::wip_user(user), str(keys::wip_users), keys::lock_user(user)},
               args);
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer;
}

caf::expected<void> write_job(client& c, const std::string& job_id, const std::string& user,
                              const std::string& lease_token, field_list fields,
                              const write_mode& mode) {
  add_if_missing(fields, "updated_at", iso8601_now());
  std::vector<std::string> args{job_id,
                                user,
                                lease_token,
                                mode.expected_status,
                                mode.final ? "1" : "0",
                                std::to_string(mode.ttl_seconds),
                                std::to_string(mode.remove_fields.size())};
  args.insert(args.end(), mode.remove_fields.begin(), mode.remove_fields.end());
  append_pairs(args, fields);
  const auto& s = scripts::job_write;
  auto r = run(c, s,
               {keys::job(job_id), keys::wip_user(user), str(keys::wip_users),
                keys::lock_user(user)},
               args);
  if (!r)
    return std::move(r.error());
  if (!r->is_integer() || r->integer != 1)
    return unexpected(s, *r);
  return {};
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
                keys::wip_user(user), str(keys::wip_users)},
               args);
  if (!r)
    return std::move(r.error());
  cancel_outcome out;
  if (r->is_integer() && r->integer == 1)
    out.cancelled = true;
  else if (r->is_string())
    out.status = std::move(r->str);
  else
    return unexpected(s, *r);
  return out;
}

caf::expected<int64_t> remove_from_wip(client& c, const std::string& job_id,
                                       const std::string& user, const std::string& lease_token) {
  const auto& s = scripts::wip_remove;
  auto r = run(c, s, {keys::wip_user(user), str(keys::wip_users), keys::lock_user(user)},
               {job_id, user, lease_token});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer;
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

caf::expected<bool> acquire_lease(client& c, const std::string& user, const std::string& token,
                                  std::chrono::milliseconds ttl) {
  const auto& s = scripts::lease_acquire;
  auto r = run(c, s, {keys::lock_user(user)}, {token, ms(ttl)});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer == 1;
}

caf::expected<void> renew_lease(client& c, const std::string& user, const std::string& token,
                                std::chrono::milliseconds ttl) {
  const auto& s = scripts::lease_renew;
  auto r = run(c, s, {keys::lock_user(user)}, {token, ms(ttl)});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  if (r->integer != 1)
    return make_error(ec::lease_lost, "lease of user " + user + " is not held by this token");
  return {};
}

caf::expected<bool> release_lease(client& c, const std::string& user, const std::string& token) {
  const auto& s = scripts::lease_release;
  auto r = run(c, s, {keys::lock_user(user)}, {token});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer == 1;
}

caf::expected<idle_release> release_lease_if_idle(client& c, const std::string& user,
                                                  const std::string& token) {
  const auto& s = scripts::lease_release_if_idle;
  auto r = run(c, s, {keys::lock_user(user), keys::queue(user), str(keys::queue_index)},
               {token, user});
  if (!r)
    return std::move(r.error());
  if (r->is_string() && r->str == "released")
    return idle_release::released;
  if (r->is_string() && r->str == "queue not empty")
    return idle_release::queue_not_empty;
  return unexpected(s, *r);
}

caf::expected<std::optional<std::string>> lease_holder(client& c, const std::string& user) {
  auto r = c.command({"GET", keys::lock_user(user)});
  if (!r)
    return std::move(r.error());
  if (r->is_nil())
    return std::optional<std::string>{};
  return std::optional<std::string>{std::move(r->str)};
}

// -- DB-host capacity ------------------------------------------------------------

caf::expected<bool> acquire_capacity(client& c, const std::string& db_host, int64_t capacity,
                                     const std::string& slot_token,
                                     std::chrono::milliseconds ttl) {
  const auto& s = scripts::capacity_acquire;
  auto r = run(c, s, {keys::capacity(db_host)}, {std::to_string(capacity), slot_token, ms(ttl)});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer == 1;
}

caf::expected<void> renew_capacity(client& c, const std::string& db_host,
                                   const std::string& slot_token, std::chrono::milliseconds ttl) {
  const auto& s = scripts::capacity_renew;
  auto r = run(c, s, {keys::capacity(db_host)}, {slot_token, ms(ttl)});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  if (r->integer != 1)
    return make_error(ec::lease_lost, "capacity slot on " + db_host + " expired or released");
  return {};
}

caf::expected<bool> release_capacity(client& c, const std::string& db_host,
                                     const std::string& slot_token) {
  const auto& s = scripts::capacity_release;
  auto r = run(c, s, {keys::capacity(db_host)}, {slot_token});
  if (!r)
    return std::move(r.error());
  if (!r->is_integer())
    return unexpected(s, *r);
  return r->integer == 1;
}

} // namespace batchq::redis
