#include "src/redis/keys.hpp"

namespace batchq::redis::keys {

namespace {

std::string concat(std::string_view a, std::string_view b) {
  std::string s;
  s.reserve(a.size() + b.size());
  s.append(a);
  s.append(b);
  return s;
}

} // namespace

std::string job(std::string_view job_id) { return concat(job_prefix, job_id); }
std::string queue(std::string_view user) { return concat(queue_prefix, user); }
std::string wip_user(std::string_view user) { return concat(wip_user_prefix, user); }
std::string lock_user(std::string_view user) { return concat(lock_user_prefix, user); }
std::string capacity(std::string_view db_host) { return concat(capacity_prefix, db_host); }
std::string node(std::string_view node_id) { return concat(node_prefix, node_id); }
std::string user_jobs(std::string_view user) { return concat("batch:indexes:jobs:", user); }

std::string idempotency(std::string_view user, std::string_view key) {
  std::string s = concat("batch:idempotency:", user);
  s += ':';
  s.append(key);
  return s;
}

std::string rails_user(std::string_view user) { return concat("rails:users:", user); }
std::string limits_batch(std::string_view user) { return concat("limits:batch:", user); }

std::string role_keys(std::string_view user) { return concat("batchq:role_keys:", user); }

std::string cancel_mark(std::string_view job_id) {
  return concat("batchq:cancel_requested:", job_id);
}

std::string results(std::string_view job_id) { return concat("batchq:results:", job_id); }

std::string api_key(std::string_view user, std::string_view token) {
  std::string s = concat("api_keys:", user);
  s += ':';
  s.append(token);
  return s;
}

std::optional<std::string> user_of_queue(std::string_view key) {
  if (key.size() <= queue_prefix.size() || key.substr(0, queue_prefix.size()) != queue_prefix)
    return std::nullopt;
  return std::string{key.substr(queue_prefix.size())};
}

std::string escape_glob(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

} // namespace batchq::redis::keys
