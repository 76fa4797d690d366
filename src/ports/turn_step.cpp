#include "src/ports/turn_step.hpp"

#include <algorithm>
#include <utility>

#include "messages/error.hpp"
#include "src/job/record.hpp"
#include "src/job/status.hpp"
#include "src/log/log.hpp"
#include "src/metrics/metrics.hpp"

namespace batchq::ports {

namespace {

std::string refusal(const std::string& from, const std::string& to) {
  return "Cannot set status from " + from + " to " + to;
}

const std::string* find_field(const field_pairs& xs, const std::string& name) {
  for (const auto& [k, v] : xs)
    if (k == name)
      return &v;
  return nullptr;
}

/// "done,failed,skipped": the steps' statuses in order.
std::string step_statuses(const job::job& j) {
  std::string out;
  for (const auto& s : j.steps) {
    if (!out.empty())
      out += ',';
    out += job::to_string(s.status);
  }
  return out;
}

} // namespace

void ended_elsewhere::add(std::string job_id) {
  std::lock_guard<std::mutex> guard{m_};
  ids_.push_back(std::move(job_id));
}

std::vector<std::string> ended_elsewhere::take() {
  std::lock_guard<std::mutex> guard{m_};
  std::vector<std::string> out;
  out.swap(ids_);
  return out;
}

bool write_allowed(const job_write& w) {
  auto from = job::parse_status(w.expected_status);
  auto to = job::parse_status(w.to_status);
  if (!from || !to)
    return false;
  switch (w.kind) {
    case write_kind::progress:
      return *from == job::status::running && *to == job::status::running;
    case write_kind::final:
      return *from == job::status::running && job::is_final(*to);
    case write_kind::requeue:
      return *from == job::status::running && *to == job::status::pending;
  }
  return false;
}

void overlay(field_pairs& record, const field_pairs& set, const std::vector<std::string>& del) {
  record.erase(std::remove_if(record.begin(), record.end(),
                              [&](const auto& kv) {
                                return std::find(del.begin(), del.end(), kv.first) != del.end();
                              }),
               record.end());
  for (const auto& [k, v] : set) {
    auto it = std::find_if(record.begin(), record.end(),
                           [&](const auto& kv) { return kv.first == k; });
    if (it != record.end())
      it->second = v;
    else
      record.emplace_back(k, v);
  }
}

job_write end_write(const job_outcome& o, const std::string& claim) {
  job_write w;
  w.job_id = o.job_id;
  w.expected_status = o.written_status;
  w.expected_claim = claim;
  w.to_status = o.status;
  w.kind = o.how == job_end::drained ? write_kind::requeue : write_kind::final;
  w.set = o.set;
  w.del = o.del;
  return w;
}

caf::expected<field_pairs> prepare_turn_step(const turn_rules& rules, turn_request& r) {
  if (r.write.size() > 1)
    return make_error(ec::invalid_job, "a turn step writes at most one job");
  if (!r.write.empty()) {
    auto& w = r.write.front();
    if (!write_allowed(w))
      return make_error(ec::invalid_transition, refusal(w.expected_status, w.to_status));
    overlay(w.set, {{"status", w.to_status}}, {});
  }
  field_pairs claim;
  if (r.part == turn_part::next)
    claim = {{"status", "running"},
             {"node", rules.node_id},
             {"updated_at", job::iso8601(rules.clock())}};
  return claim;
}

caf::expected<turn_answer> run_turn_step(job_store& store, const turn_rules& rules,
                                         turn_request& r) {
  auto claim = prepare_turn_step(rules, r);
  if (!claim)
    return std::move(claim.error());
  return store.turn(r, *claim, rules.finished_jobs_ttl);
}

void log_job_finished(const std::string& job_id, const std::string& user,
                      const std::string& status, const field_pairs& record, job::time_point now) {
  log::fields fs{{"job_id", job_id}, {"user", user}, {"status", status}};
  if (auto created = find_field(record, "created_at")) {
    if (auto t = job::parse_iso8601(*created)) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - *t).count();
      fs.emplace_back("elapsed_ms", std::to_string(ms));
    }
  }
  if (!record.empty()) {
    auto j = job::decode(job_id, record);
    if (j)
      fs.emplace_back("steps", step_statuses(*j));
  }
  log::info("job finished", fs);
  metrics::job_finished(status);
}

} // namespace batchq::ports
