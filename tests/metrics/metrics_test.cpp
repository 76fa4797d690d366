// src/metrics: the Prometheus text exposition of the process-wide counters.
#include "src/metrics/metrics.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace batchq::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

} // namespace

TEST(metrics, a_fresh_registry_renders_every_metric_with_help_and_type) {
  registry r;
  auto text = render(r);
  for (auto name : {"batchq_jobs_created_total", "batchq_jobs_finished_total",
                    "batchq_running_statements", "batchq_statement_duration_seconds",
                    "batchq_enqueue_to_start_seconds"}) {
    EXPECT_NE(text.find(std::string{"# HELP "} + name + " "), std::string::npos) << name;
    EXPECT_NE(text.find(std::string{"# TYPE "} + name + " "), std::string::npos) << name;
  }
  EXPECT_TRUE(has_line(text, "batchq_jobs_created_total 0"));
  EXPECT_TRUE(has_line(text, "batchq_jobs_finished_total{status=\"done\"} 0"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"+Inf\"} 0"));
}

TEST(metrics, histogram_buckets_are_cumulative_and_sum_and_count_add_up) {
  registry r;
  r.statement_duration.observe(0.003); // le 0.005
  r.statement_duration.observe(0.2);   // le 0.25
  r.statement_duration.observe(5000);  // only +Inf
  auto text = render(r);
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"0.001\"} 0"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"0.005\"} 1"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"0.25\"} 2"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"600\"} 2"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_count 3"));
  EXPECT_TRUE(has_line(text, "batchq_statement_duration_seconds_sum 5000.203"));
}

TEST(metrics, only_final_statuses_are_counted_as_finished) {
  auto& g = global();
  auto before_done = g.jobs_finished[0].load();
  job_finished("done");
  job_finished("running");
  job_finished("pending");
  EXPECT_EQ(g.jobs_finished[0].load(), before_done + 1);
  auto text = render(g);
  EXPECT_TRUE(has_line(text, "batchq_jobs_finished_total{status=\"done\"} "
                               + std::to_string(before_done + 1)));
  EXPECT_EQ(text.find("status=\"running\""), std::string::npos);
}

TEST(metrics, extra_samples_from_redis_are_appended_as_gauges) {
  registry r;
  auto text = render(r, {{"batchq_queue_depth", "gauge", "Queued job ids.", 12}});
  EXPECT_NE(text.find("# TYPE batchq_queue_depth gauge\n"), std::string::npos);
  EXPECT_TRUE(has_line(text, "batchq_queue_depth 12"));
}

TEST(metrics, concurrent_recording_loses_no_increment) {
  registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        r.jobs_created.fetch_add(1, std::memory_order_relaxed);
        r.enqueue_to_start.observe(0.01);
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(r.jobs_created.load(), 40000u);
  EXPECT_EQ(r.enqueue_to_start.count(), 40000u);
  EXPECT_EQ(r.enqueue_to_start.cumulative(histogram::bounds.size() - 1), 40000u);
}
