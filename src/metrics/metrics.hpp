// Process-wide counters for GET /metrics (SPEC §8), in Prometheus' text
// exposition format, names prefixed `batchq_`.
//
// One registry per process (`metrics::global()`), like the default registry of
// Prometheus' client libraries: the API records jobs created, the status actor
// jobs finished, the job runner statement durations and the running
// statements, the user queue the wait from enqueue to start. Gauges that live
// in Redis (queue depth) are read at scrape time by the HTTP layer and passed
// to render() as extra samples.
//
// Thread safety: every recording function is lock-free (relaxed atomics) and
// may be called from any thread, including CAF's scheduler threads. render()
// reads a consistent-enough snapshot (each value atomically, not all at once).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace batchq::metrics {

/// A histogram with fixed upper bounds (seconds).
class histogram {
public:
  /// Upper bounds of the buckets (le), ascending; +Inf is implicit.
  static constexpr std::array<double, 14> bounds{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,     2.5,  5,     10,  60,  600};

  void observe(double seconds) noexcept;

  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept;
  /// Cumulative count of observations <= bounds[i].
  uint64_t cumulative(size_t i) const noexcept;

private:
  std::array<std::atomic<uint64_t>, bounds.size()> buckets_{};
  std::atomic<uint64_t> count_{0};
  /// Sum in microseconds (an integer keeps the add lock-free).
  std::atomic<uint64_t> sum_us_{0};
};

/// The final statuses a job can finish with (label `status`).
inline constexpr std::array<std::string_view, 4> final_statuses{"done", "failed", "cancelled",
                                                                "unknown"};

/// How a user's cancel of a running or pending job was carried out, on the
/// node that took the request (label `path` of batchq_cancel_requests_total):
/// pending in Redis, the local runner, another node's runner over the cluster
/// link, or the pg_cancel_backend fallback.
inline constexpr std::array<std::string_view, 4> cancel_paths{"pending", "local", "node",
                                                              "backend"};

/// Why a message from another node was refused (label `reason` of
/// batchq_cluster_messages_refused_total; auth::verdict names).
inline constexpr std::array<std::string_view, 5> refusal_reasons{
  "missing_proof", "bad_proof", "stale", "replayed", "wrong_node"};

struct registry {
  /// batchq_jobs_created_total
  std::atomic<uint64_t> jobs_created{0};
  /// batchq_jobs_finished_total{status=...}, indexed like final_statuses.
  std::array<std::atomic<uint64_t>, final_statuses.size()> jobs_finished{};
  /// batchq_running_statements (on this node).
  std::atomic<int64_t> running_statements{0};
  /// batchq_statement_duration_seconds
  histogram statement_duration;
  /// batchq_enqueue_to_start_seconds (created_at to the first statement).
  histogram enqueue_to_start;
  /// batchq_redis_round_trips_total: network round trips of every Redis
  /// client of the process (a pipeline or a script is one).
  std::atomic<uint64_t> redis_round_trips{0};
  /// batchq_postgres_round_trips_total: statements sent by job sessions
  /// (each waits for its results: one round trip).
  std::atomic<uint64_t> postgres_round_trips{0};
  /// batchq_result_bytes_kept_total / batchq_result_rows_kept_total: stored
  /// rows of kept results (SPEC §11) this node's runners appended to Redis.
  std::atomic<uint64_t> result_bytes_kept{0};
  std::atomic<uint64_t> result_rows_kept{0};
  /// batchq_cancel_requests_total{path=...}, indexed like cancel_paths.
  std::array<std::atomic<uint64_t>, cancel_paths.size()> cancel_requests{};
  /// batchq_cluster_messages_refused_total{reason=...}, indexed like refusal_reasons.
  std::array<std::atomic<uint64_t>, refusal_reasons.size()> cluster_refused{};
};

/// The process's registry.
registry& global();

/// Counts a job that reached `status` (ignored unless it is a final status).
void job_finished(std::string_view status);

/// Counts a cancel carried out by `path` (one of cancel_paths).
void cancel_request(std::string_view path);

/// Counts a refused message from another node (`reason`: one of refusal_reasons).
void cluster_refused(std::string_view reason);

/// A sample computed at scrape time, e.g. {"batchq_queue_depth", "gauge",
/// "Job ids waiting in users' queues (Redis).", 12}.
struct sample {
  std::string name;
  std::string type; // gauge | counter
  std::string help;
  double value = 0;
};

/// The Prometheus text exposition of `r` followed by `extra`.
std::string render(const registry& r, const std::vector<sample>& extra = {});

} // namespace batchq::metrics
