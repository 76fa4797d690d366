#include "cluster/chaos/checker.hpp"

#include <algorithm>
#include <map>
#include <sstream>

namespace batchq::chaos {

namespace {

constexpr size_t max_problems_per_kind = 5;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

/// The node named by a "job interrupted: node <id> was lost while running it".
std::string lost_node(const std::string& reason) {
  const std::string head = "job interrupted: node ";
  const std::string tail = " was lost while running it";
  if (!starts_with(reason, head) || reason.size() < head.size() + tail.size()
      || reason.compare(reason.size() - tail.size(), tail.size(), tail) != 0)
    return {};
  return reason.substr(head.size(), reason.size() - head.size() - tail.size());
}

bool connection_lost(const std::string& reason) {
  return starts_with(reason, "connection to the database was lost")
         || reason.find("terminating connection") != std::string::npos;
}

struct tally {
  verdict& v;
  std::map<std::string, size_t> shown;

  void problem(int64_t& counter, const std::string& kind, const std::string& what) {
    ++counter;
    if (shown[kind]++ < max_problems_per_kind)
      v.problems.push_back(kind + ": " + what);
  }
};

} // namespace

std::string node_lost_reason(const std::string& node) {
  return "job interrupted: node " + node + " was lost while running it";
}

verdict check(const run_facts& f) {
  verdict v;
  tally t{v, {}};
  std::map<std::string, std::vector<const commit_row*>> rows_of_job;
  std::map<std::string, std::vector<const commit_row*>> rows_of_user;
  for (const auto& r : f.rows) {
    rows_of_job[r.job].push_back(&r);
    rows_of_user[r.user].push_back(&r);
  }
  for (const auto& j : f.jobs) {
    ++v.jobs;
    auto committed = rows_of_job.count(j.id) ? rows_of_job[j.id].size() : 0u;
    if (!j.exists) {
      t.problem(v.lost, "lost", j.id + " (user " + j.user + ", #" + std::to_string(j.seq) + ")");
      continue;
    }
    if (j.status == "pending" || j.status == "running") {
      t.problem(v.stuck, "stuck", j.id + " left " + j.status);
      continue;
    }
    bool recovered = f.recovered_from_dead.count(j.id) > 0;
    if (committed > 1) {
      if (f.mode == loss_mode::requeue && recovered)
        v.reruns += static_cast<int64_t>(committed - 1);
      else
        t.problem(v.doubled, "doubled",
                  j.id + " committed " + std::to_string(committed) + " times");
    }
    if (j.status == "done") {
      ++v.done;
      if (committed == 0)
        t.problem(v.done_uncommitted, "done without a commit", j.id);
      continue;
    }
    if (j.status != "failed") {
      t.problem(v.unexpected, "unexpected status", j.id + " is " + j.status);
      continue;
    }
    ++v.failed;
    if (starts_with(j.failed_reason, "chaos: two statements")) {
      t.problem(v.overlapping, "overlap guard", j.id + ": " + j.failed_reason);
      continue;
    }
    auto node = lost_node(j.failed_reason);
    bool dead = !node.empty() && f.dead_nodes.count(node) > 0;
    if (!node.empty() && !dead) {
      t.problem(v.false_failures, "failed as lost by a live node", j.id + ": " + j.failed_reason);
      continue;
    }
    if (committed > 0) {
      if (dead)
        ++v.ambiguous;
      else
        t.problem(v.false_failures, "failed although it committed",
                  j.id + ": " + j.failed_reason);
      continue;
    }
    if (dead) {
      if (f.mode == loss_mode::requeue)
        t.problem(v.unexpected, "failed as lost with on-node-loss=requeue", j.id);
      continue;
    }
    if (connection_lost(j.failed_reason) && v.failed_by_fault < f.terminated) {
      ++v.failed_by_fault;
      continue;
    }
    t.problem(v.unexpected, "unexpected failure", j.id + ": " + j.failed_reason);
  }
  for (auto& [user, rows] : rows_of_user) {
    std::sort(rows.begin(), rows.end(), [](const commit_row* a, const commit_row* b) {
      return a->started_us < b->started_us || (a->started_us == b->started_us && a->seq < b->seq);
    });
    for (size_t i = 1; i < rows.size(); ++i) {
      const auto& a = *rows[i - 1];
      const auto& b = *rows[i];
      if (b.seq < a.seq)
        t.problem(v.reordered, "reordered",
                  user + ": #" + std::to_string(b.seq) + " after #" + std::to_string(a.seq));
      if (b.started_us < a.ended_us)
        t.problem(v.overlapping, "overlapping",
                  user + ": #" + std::to_string(a.seq) + " and #" + std::to_string(b.seq));
    }
  }
  if (f.leases_left > 0)
    t.problem(v.residue, "residue", std::to_string(f.leases_left) + " leases left");
  if (f.wip_left > 0)
    t.problem(v.residue, "residue", std::to_string(f.wip_left) + " users with work in progress");
  if (f.queued_left > 0)
    t.problem(v.residue, "residue", std::to_string(f.queued_left) + " ids still queued");
  return v;
}

std::string to_string(const verdict& v) {
  std::ostringstream out;
  out << "  jobs " << v.jobs << ": " << v.done << " done, " << v.failed << " failed\n"
      << "  lost " << v.lost << ", stuck " << v.stuck << ", reordered " << v.reordered
      << ", overlapping " << v.overlapping << ", doubled " << v.doubled << ", false failures "
      << v.false_failures << ", unexpected " << v.unexpected << ", done uncommitted "
      << v.done_uncommitted << ", residue " << v.residue << "\n"
      << "  allowed: ambiguous (failed as lost by a dead node, statement committed) "
      << v.ambiguous << ", reruns of jobs of dead nodes " << v.reruns
      << ", failed by pg_terminate_backend " << v.failed_by_fault << "\n";
  for (const auto& p : v.problems)
    out << "  VIOLATION " << p << "\n";
  out << "  result: " << (v.ok() ? "PASS" : "FAIL") << "\n";
  return out.str();
}

} // namespace batchq::chaos
