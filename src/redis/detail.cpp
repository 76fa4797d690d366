#include "src/redis/detail.hpp"

#include <algorithm>

#include "messages/error.hpp"

namespace batchq::redis::detail {

namespace {

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

/// The text after "<CODE> " in a script error reply.
std::string after_code(const std::string& text, std::string_view code) {
  return text.size() > code.size() + 1 ? text.substr(code.size() + 1) : std::string{};
}

} // namespace

caf::error map_script_error(caf::error err) {
  if (!is(err, ec::redis_error))
    return err;
  auto text = message_of(err);
  if (starts_with(text, "LEASE_LOST"))
    return make_error(ec::lease_lost, "lease of user " + after_code(text, "LEASE_LOST")
                                        + " is not held by this token");
  if (starts_with(text, "JOB_NOT_FOUND"))
    return make_error(ec::job_not_found, "Job with id " + after_code(text, "JOB_NOT_FOUND")
                                           + " not found");
  if (starts_with(text, "QUEUE_FULL"))
    return make_error(ec::queue_full, "Failed to create job. Max number of jobs ("
                                        + after_code(text, "QUEUE_FULL") + ") queued reached");
  if (starts_with(text, "JOB_EXISTS"))
    return make_error(ec::job_exists, "Job with id " + after_code(text, "JOB_EXISTS")
                                        + " already exists");
  if (starts_with(text, "NOT_RUNNING"))
    return make_error(ec::invalid_transition,
                      "job status is now " + after_code(text, "NOT_RUNNING"));
  if (starts_with(text, "FENCED"))
    return make_error(ec::invalid_transition, "the rows of step " + after_code(text, "FENCED")
                                                + " are kept by another run");
  if (starts_with(text, "STATUS_CHANGED"))
    return make_error(ec::invalid_transition,
                      "job status is now " + after_code(text, "STATUS_CHANGED"));
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
  return make_error(ec::redis_error, "unexpected reply from script " + std::string{s.name}
                                       + ": " + r.to_string());
}

bool has_field(const field_list& fields, std::string_view name) {
  return std::any_of(fields.begin(), fields.end(),
                     [&](const auto& kv) { return kv.first == name; });
}

void add_if_missing(field_list& fields, std::string_view name, const std::string& value) {
  if (!has_field(fields, name))
    fields.emplace_back(std::string{name}, value);
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

} // namespace batchq::redis::detail
