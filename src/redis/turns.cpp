#include "src/redis/turns.hpp"

#include "src/redis/detail.hpp"
#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"

namespace batchq::redis {

namespace {

std::string str(std::string_view x) { return std::string{x}; }

const char* part_name(turn_part p) {
  switch (p) {
    case turn_part::none: return "none";
    case turn_part::next: return "next";
    case turn_part::release: return "release";
  }
  return "none";
}

const char* kind_name(write_kind k) {
  switch (k) {
    case write_kind::progress: return "progress";
    case write_kind::final: return "final";
    case write_kind::requeue: return "requeue";
  }
  return "progress";
}

/// Reads {id, hash, id, hash, ...} from `r.elements[from..]` into `out`.
bool read_jobs(const reply& r, size_t from, std::vector<dequeued_job>& out) {
  if ((r.elements.size() - from) % 2 != 0)
    return false;
  for (size_t i = from; i + 1 < r.elements.size(); i += 2) {
    if (!r.elements[i].is_string() || !r.elements[i + 1].is_array())
      return false;
    out.push_back(dequeued_job{r.elements[i].str, detail::to_map(r.elements[i + 1])});
  }
  return true;
}

} // namespace

const char* to_string(turn_reply::outcome x) {
  switch (x) {
    case turn_reply::outcome::none: return "none";
    case turn_reply::outcome::empty: return "empty";
    case turn_reply::outcome::busy: return "busy";
    case turn_reply::outcome::full: return "full";
    case turn_reply::outcome::job: return "job";
    case turn_reply::outcome::recover: return "recover";
    case turn_reply::outcome::released: return "released";
  }
  return "none";
}

caf::expected<turn_reply> turn_step(client& c, const turn_args& a) {
  std::vector<std::string> args{a.user,
                                a.token,
                                std::to_string(a.ttl.count()),
                                std::to_string(a.capacity),
                                a.slot,
                                str(keys::job_prefix),
                                str(keys::users_channel),
                                part_name(a.part)};
  if (a.write) {
    const auto& w = *a.write;
    args.insert(args.end(), {w.job_id, w.expected_status, w.expected_claim, w.to_status,
                             kind_name(w.kind), std::to_string(w.ttl_seconds)});
  } else {
    args.insert(args.end(), {"", "", "", "", "progress", "0"});
  }
  args.push_back(a.inherit);
  args.push_back(str(keys::node_prefix));
  args.push_back(std::to_string(a.claim.size() * 2));
  detail::append_pairs(args, a.claim);
  if (a.write) {
    auto set = a.write->set;
    detail::add_if_missing(set, "updated_at", iso8601_now());
    args.push_back(std::to_string(a.write->del.size()));
    args.insert(args.end(), a.write->del.begin(), a.write->del.end());
    detail::append_pairs(args, set);
  } else {
    args.push_back("0");
  }
  const auto& s = scripts::turn;
  auto r = detail::run(c, s,
                       {keys::lock_user(a.user), keys::capacity(a.host), keys::queue(a.user),
                        str(keys::queue_index), keys::wip_user(a.user), str(keys::wip_users)},
                       args);
  if (!r)
    return std::move(r.error());
  if (!r->is_array() || r->elements.size() < 2 || !r->elements[0].is_string()
      || !r->elements[1].is_string())
    return detail::unexpected(s, *r);
  turn_reply out;
  const auto& w = r->elements[0].str;
  if (w == "written")
    out.write = turn_reply::written::yes;
  else if (w == "applied")
    out.write = turn_reply::written::applied;
  else if (w != "none")
    return detail::unexpected(s, *r);
  const auto& what = r->elements[1].str;
  bool ok = true;
  if (what == "none") {
    out.what = turn_reply::outcome::none;
  } else if (what == "empty") {
    out.what = turn_reply::outcome::empty;
  } else if (what == "busy") {
    out.what = turn_reply::outcome::busy;
  } else if (what == "full") {
    out.what = turn_reply::outcome::full;
  } else if (what == "job") {
    out.what = turn_reply::outcome::job;
    ok = r->elements.size() == 4 && read_jobs(*r, 2, out.jobs);
  } else if (what == "recover") {
    out.what = turn_reply::outcome::recover;
    ok = r->elements.size() >= 5 && (r->elements.size() - 2) % 3 == 0;
    for (size_t i = 2; ok && i + 2 < r->elements.size(); i += 3) {
      const auto& id = r->elements[i];
      const auto& hash = r->elements[i + 1];
      const auto& alive = r->elements[i + 2];
      ok = id.is_string() && hash.is_array() && alive.is_integer();
      if (ok)
        out.jobs.push_back(dequeued_job{id.str, detail::to_map(hash), alive.integer == 1});
    }
  } else if (what == "released") {
    out.what = turn_reply::outcome::released;
    ok = r->elements.size() == 3 && r->elements[2].is_integer();
    if (ok)
      out.queue_length = r->elements[2].integer;
  } else {
    ok = false;
  }
  if (!ok)
    return detail::unexpected(s, *r);
  return out;
}

caf::expected<std::vector<bool>> renew_turns(client& c, const std::vector<held_turn>& held,
                                             std::chrono::milliseconds ttl) {
  if (held.empty())
    return std::vector<bool>{};
  std::vector<std::string> args{std::to_string(ttl.count()), str(keys::lock_user_prefix),
                                str(keys::capacity_prefix)};
  args.reserve(3 + held.size() * 4);
  for (const auto& h : held)
    args.insert(args.end(), {h.user, h.token, h.host, h.slot});
  const auto& s = scripts::turns_renew;
  auto r = detail::run(c, s, {}, args);
  if (!r)
    return std::move(r.error());
  if (!r->is_array() || r->elements.size() != held.size())
    return detail::unexpected(s, *r);
  std::vector<bool> out;
  out.reserve(held.size());
  for (const auto& e : r->elements) {
    if (!e.is_integer())
      return detail::unexpected(s, *r);
    out.push_back(e.integer == 1);
  }
  return out;
}

caf::expected<std::vector<std::string>> database_hosts(client& c,
                                                       const std::vector<std::string>& users) {
  if (users.empty())
    return std::vector<std::string>{};
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(users.size());
  for (const auto& u : users)
    cmds.push_back({"HGET", keys::rails_user(u), "database_host"});
  auto r = c.pipeline(cmds);
  if (!r)
    return std::move(r.error());
  std::vector<std::string> out;
  out.reserve(users.size());
  for (auto& x : *r) {
    if (x.is_error())
      return make_error(ec::redis_error, "HGET database_host: " + x.str);
    out.push_back(x.is_string() ? std::move(x.str) : std::string{});
  }
  return out;
}

caf::expected<void> announce_users(client& c, const std::vector<std::string>& users) {
  if (users.empty())
    return {};
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(users.size());
  for (const auto& u : users)
    cmds.push_back({"PUBLISH", str(keys::users_channel), u});
  auto r = c.pipeline(cmds);
  if (!r)
    return std::move(r.error());
  return {};
}

} // namespace batchq::redis
