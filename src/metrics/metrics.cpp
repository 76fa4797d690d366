#include "src/metrics/metrics.hpp"

#include <cmath>
#include <sstream>

namespace batchq::metrics {

void histogram::observe(double seconds) noexcept {
  if (!(seconds >= 0)) // negative or NaN (clock skew): count as 0
    seconds = 0;
  for (size_t i = 0; i < bounds.size(); ++i)
    if (seconds <= bounds[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(std::llround(seconds * 1e6)),
                    std::memory_order_relaxed);
}

double histogram::sum() const noexcept {
  return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
}

uint64_t histogram::cumulative(size_t i) const noexcept {
  uint64_t total = 0;
  for (size_t j = 0; j <= i && j < bounds.size(); ++j)
    total += buckets_[j].load(std::memory_order_relaxed);
  return total;
}

registry& global() {
  static registry r;
  return r;
}

namespace {

void header(std::ostream& out, const std::string& name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << '\n' << "# TYPE " << name << ' ' << type << '\n';
}

void write_histogram(std::ostream& out, const std::string& name, const char* help,
                     const histogram& h) {
  header(out, name, "histogram", help);
  for (size_t i = 0; i < histogram::bounds.size(); ++i)
    out << name << "_bucket{le=\"" << histogram::bounds[i] << "\"} " << h.cumulative(i) << '\n';
  out << name << "_bucket{le=\"+Inf\"} " << h.count() << '\n';
  out << name << "_sum " << h.sum() << '\n';
  out << name << "_count " << h.count() << '\n';
}

/// A counter with one label: one sample per label value, in `values`' order.
template <size_t N>
void write_labelled(std::ostream& out, const char* name, const char* help, const char* label,
                    const std::array<std::string_view, N>& values,
                    const std::array<std::atomic<uint64_t>, N>& counts) {
  header(out, name, "counter", help);
  for (size_t i = 0; i < N; ++i)
    out << name << '{' << label << "=\"" << values[i] << "\"} " << counts[i].load() << '\n';
}

/// Adds one to the counter whose label value is `value` (none when unknown).
template <size_t N>
void count_labelled(const std::array<std::string_view, N>& values,
                    std::array<std::atomic<uint64_t>, N>& counts, std::string_view value) {
  for (size_t i = 0; i < N; ++i)
    if (values[i] == value)
      counts[i].fetch_add(1, std::memory_order_relaxed);
}

} // namespace

void job_finished(std::string_view status) {
  count_labelled(final_statuses, global().jobs_finished, status);
}

void cancel_request(std::string_view path) {
  count_labelled(cancel_paths, global().cancel_requests, path);
}

void cluster_refused(std::string_view reason) {
  count_labelled(refusal_reasons, global().cluster_refused, reason);
}

std::string render(const registry& r, const std::vector<sample>& extra) {
  std::ostringstream out;
  out.precision(15);
  header(out, "batchq_jobs_created_total", "counter", "Jobs created through this node's API.");
  out << "batchq_jobs_created_total " << r.jobs_created.load() << '\n';
  write_labelled(out, "batchq_jobs_finished_total",
                 "Jobs that reached a final status on this node, by status.", "status",
                 final_statuses, r.jobs_finished);
  header(out, "batchq_running_statements", "gauge",
         "Statements running in PostgreSQL for this node now.");
  out << "batchq_running_statements " << r.running_statements.load() << '\n';
  write_histogram(out, "batchq_statement_duration_seconds",
                  "Duration of each statement (steps and fallbacks) run by this node.",
                  r.statement_duration);
  write_histogram(out, "batchq_enqueue_to_start_seconds",
                  "Time from a job's creation to its first statement on this node.",
                  r.enqueue_to_start);
  header(out, "batchq_redis_round_trips_total", "counter",
         "Network round trips of this process's Redis clients (a pipeline or a script is one).");
  out << "batchq_redis_round_trips_total " << r.redis_round_trips.load() << '\n';
  header(out, "batchq_postgres_round_trips_total", "counter",
         "Statements sent to PostgreSQL by this node's job sessions (one round trip each).");
  out << "batchq_postgres_round_trips_total " << r.postgres_round_trips.load() << '\n';
  header(out, "batchq_result_bytes_kept_total", "counter",
         "Bytes of kept result rows (stored form) this node's runners wrote to Redis.");
  out << "batchq_result_bytes_kept_total " << r.result_bytes_kept.load() << '\n';
  header(out, "batchq_result_rows_kept_total", "counter",
         "Kept result rows this node's runners wrote to Redis.");
  out << "batchq_result_rows_kept_total " << r.result_rows_kept.load() << '\n';
  write_labelled(out, "batchq_cancel_requests_total",
                 "Cancels of pending or running jobs requested at this node, by how they were "
                 "carried out.",
                 "path", cancel_paths, r.cancel_requests);
  write_labelled(out, "batchq_cluster_messages_refused_total",
                 "Messages from other nodes refused by this node's cluster gate, by reason.",
                 "reason", refusal_reasons, r.cluster_refused);
  for (const auto& s : extra) {
    header(out, s.name, s.type.c_str(), s.help.c_str());
    out << s.name << ' ' << s.value << '\n';
  }
  return out.str();
}

} // namespace batchq::metrics
