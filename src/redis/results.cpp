#include "src/redis/results.hpp"

#include "src/redis/detail.hpp"
#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"

namespace batchq::redis {

using detail::run;
using detail::unexpected;

caf::expected<results_start> begin_results(client& c, const std::string& job_id, size_t step,
                                           const std::string& run_id) {
  const auto& s = scripts::results_begin;
  auto r = run(c, s, {keys::job(job_id), keys::results(job_id)}, {run_id, std::to_string(step)});
  if (!r)
    return std::move(r.error());
  if (!r->is_array() || r->elements.size() != 2 || !r->elements[0].is_integer()
      || !r->elements[1].is_integer())
    return unexpected(s, *r);
  return results_start{r->elements[0].integer, r->elements[1].integer};
}

caf::expected<void> append_results(client& c, const std::string& job_id, size_t step,
                                   const std::string& run_id, const results_batch& batch) {
  std::vector<std::string> args;
  args.reserve(7 + batch.rows.size());
  args = {run_id,
          std::to_string(step),
          batch.columns_json,
          batch.restart ? "1" : "0",
          std::to_string(batch.bytes),
          batch.truncated ? "1" : "0",
          batch.finished ? "1" : "0"};
  args.insert(args.end(), batch.rows.begin(), batch.rows.end());
  const auto& s = scripts::results_append;
  auto r = run(c, s, {keys::job(job_id), keys::results(job_id)}, args);
  if (!r)
    return std::move(r.error());
  if (!r->is_array() || r->elements.size() != 2)
    return unexpected(s, *r);
  return {};
}

caf::expected<std::vector<std::string>> read_result_rows(client& c, const std::string& job_id,
                                                         int64_t first, int64_t count) {
  if (count <= 0)
    return std::vector<std::string>{};
  auto r = c.command({"LRANGE", keys::results(job_id), std::to_string(first),
                      std::to_string(first + count - 1)});
  if (!r)
    return std::move(r.error());
  if (!r->is_array())
    return make_error(ec::redis_error, "unexpected LRANGE reply: " + r->to_string());
  std::vector<std::string> out;
  out.reserve(r->elements.size());
  for (auto& e : r->elements)
    out.push_back(std::move(e.str));
  return out;
}

} // namespace batchq::redis
