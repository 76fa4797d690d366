#include "src/job/progress.hpp"

#include "src/job/template.hpp"

#include <algorithm>

namespace batchq::job {

namespace {

bool is_open(status x) {
  return x == status::pending || x == status::running;
}

bool open_fallback(const std::optional<status>& x) {
  return x && is_open(*x);
}

struct position {
  statement_kind kind;
  size_t step;
};

bool operator==(const position& x, const position& y) {
  return x.kind == y.kind && x.step == y.step;
}

// Steps after a failed or cancelled one never run.
bool stops_job(status x) {
  return x == status::failed || x == status::cancelled || x == status::unknown;
}

// The statement in flight or next to run, derived from statuses only.
std::optional<position> locate(const job& j) {
  if (is_final(j.status))
    return std::nullopt;
  for (size_t i = 0; i < j.steps.size(); ++i) {
    const auto& s = j.steps[i];
    if (is_open(s.status))
      return position{statement_kind::step, i};
    if (open_fallback(s.fallback_status)) {
      if (s.status == status::done && s.onsuccess)
        return position{statement_kind::step_onsuccess, i};
      if (s.status == status::failed && s.onerror)
        return position{statement_kind::step_onerror, i};
    }
    if (stops_job(s.status))
      break;
  }
  if (open_fallback(j.fallback_status)) {
    auto o = steps_outcome(j);
    if (o == status::done && j.onsuccess)
      return position{statement_kind::job_onsuccess, 0};
    if (o == status::failed && j.onerror)
      return position{statement_kind::job_onerror, 0};
  }
  return std::nullopt;
}

// A fallback's text with its templates rendered; one whose text changed was
// rendered from a template, and an error message quoted into it needs
// standard_conforming_strings on (pg/session).
void render_fallback(statement& st, const std::string& source, const std::string& job_id,
                     const std::string& error_message) {
  st.sql = render_template(source, job_id, error_message);
  st.templated = st.sql != source;
}

// The status of what `p` designates.
status target_status(const job& j, const position& p) {
  switch (p.kind) {
  case statement_kind::step:
    return j.steps[p.step].status;
  case statement_kind::step_onsuccess:
  case statement_kind::step_onerror:
    return j.steps[p.step].fallback_status.value_or(status::skipped);
  default:
    return j.fallback_status.value_or(status::skipped);
  }
}

void set_target_status(job& j, const position& p, status x) {
  switch (p.kind) {
  case statement_kind::step:
    j.steps[p.step].status = x;
    break;
  case statement_kind::step_onsuccess:
  case statement_kind::step_onerror:
    j.steps[p.step].fallback_status = x;
    break;
  default:
    j.fallback_status = x;
  }
}

std::optional<position> running_position(const job& j) {
  auto p = locate(j);
  if (p && target_status(j, *p) == status::running)
    return p;
  return std::nullopt;
}

// The message a job-level onerror sees: the job's failed_reason, or (for records
// where CARTO left it unset) the first failed step's.
std::string job_error_message(const job& j) {
  if (j.failed_reason)
    return *j.failed_reason;
  for (const auto& s : j.steps)
    if (s.status == status::failed && s.failed_reason)
      return *s.failed_reason;
  return {};
}

void skip_if_pending(status& x) {
  if (x == status::pending)
    x = status::skipped;
}

void skip_if_pending(std::optional<status>& x) {
  if (x && *x == status::pending)
    x = status::skipped;
}

// Brings statuses that can no longer change into their terminal form, and writes
// the job's final status when nothing remains. Idempotent.
void settle(job& j, time_point now) {
  if (is_final(j.status))
    return;
  bool stopped = false;
  bool steps_open = false;
  for (auto& s : j.steps) {
    if (stopped) {
      skip_if_pending(s.status);
      skip_if_pending(s.fallback_status);
      continue;
    }
    if (is_open(s.status)) {
      steps_open = true;
      continue;
    }
    // The step's main query is over: a fallback that will not run is skipped.
    if (s.fallback_status && *s.fallback_status == status::pending) {
      bool runs =
          (s.status == status::done && s.onsuccess) || (s.status == status::failed && s.onerror);
      if (!runs)
        s.fallback_status = status::skipped;
    }
    if (open_fallback(s.fallback_status))
      steps_open = true;
    if (stops_job(s.status))
      stopped = true;
  }
  if (steps_open)
    return;
  auto outcome = steps_outcome(j);
  if (j.fallback_status && *j.fallback_status == status::pending) {
    bool runs =
        (outcome == status::done && j.onsuccess) || (outcome == status::failed && j.onerror);
    if (!runs)
      j.fallback_status = status::skipped;
  }
  if (open_fallback(j.fallback_status))
    return;
  if (j.status == status::running) {
    j.status = outcome;
    if (outcome == status::failed && !j.failed_reason) {
      auto msg = job_error_message(j);
      if (!msg.empty())
        j.failed_reason = msg;
    }
    j.updated_at = iso8601(now);
  }
}

problem refusal(status from, status to) {
  return problem{problem_kind::invalid_transition, transition_refusal(from, to)};
}

// Records a failure of the running statement at `p` (shared by apply, node_lost).
void record_failure(job& j, const position& p, const std::string& msg, time_point now) {
  auto ts = iso8601(now);
  switch (p.kind) {
  case statement_kind::step: {
    auto& s = j.steps[p.step];
    s.status = status::failed;
    s.failed_reason = msg;
    s.ended_at = ts;
    j.failed_reason = msg;
    for (size_t i = p.step + 1; i < j.steps.size(); ++i) {
      skip_if_pending(j.steps[i].status);
      skip_if_pending(j.steps[i].fallback_status);
    }
    break;
  }
  case statement_kind::step_onsuccess:
  case statement_kind::step_onerror: {
    auto& s = j.steps[p.step];
    s.fallback_status = status::failed;
    s.fallback_failed_reason = msg;
    // CARTO compatibility: a failed fallback after a successful main query also
    // shows as the step's failed_reason; a failed main query keeps its own.
    if (s.status == status::done)
      s.failed_reason = msg;
    break;
  }
  default:
    j.fallback_status = status::failed;
    j.fallback_failed_reason = msg;
  }
  j.updated_at = ts;
  settle(j, now);
}

void to_pending(job& j, time_point now) {
  if (auto p = running_position(j)) {
    set_target_status(j, *p, status::pending);
    if (p->kind == statement_kind::step) {
      j.steps[p->step].started_at.reset();
      j.steps[p->step].ended_at.reset();
    }
  }
  j.status = status::pending;
  j.updated_at = iso8601(now);
}

} // namespace

const char* to_string(statement_kind x) {
  switch (x) {
  case statement_kind::step:
    return "step";
  case statement_kind::step_onsuccess:
    return "step_onsuccess";
  case statement_kind::step_onerror:
    return "step_onerror";
  case statement_kind::job_onsuccess:
    return "job_onsuccess";
  case statement_kind::job_onerror:
    return "job_onerror";
  }
  return "step";
}

std::string node_lost_message(std::string_view node_id) {
  return "job interrupted: node " + std::string{node_id} + " was lost while running it";
}

status steps_outcome(const job& j) {
  bool cancelled = false;
  for (const auto& s : j.steps) {
    if (s.status == status::failed || s.status == status::unknown)
      return status::failed;
    if (s.status == status::cancelled)
      cancelled = true;
  }
  return cancelled ? status::cancelled : status::done;
}

std::optional<statement> next_statement(const job& j, int64_t cap_ms) {
  auto p = locate(j);
  if (!p)
    return std::nullopt;
  statement st;
  st.kind = p->kind;
  st.step = p->step;
  st.timeout_ms = cap_ms > 0 ? cap_ms : 0;
  switch (p->kind) {
  case statement_kind::step: {
    const auto& s = j.steps[p->step];
    st.sql = s.query;
    if (s.timeout_ms && *s.timeout_ms > 0)
      st.timeout_ms = cap_ms > 0 ? std::min(*s.timeout_ms, cap_ms) : *s.timeout_ms;
    break;
  }
  case statement_kind::step_onsuccess:
    render_fallback(st, *j.steps[p->step].onsuccess, j.job_id, "");
    break;
  case statement_kind::step_onerror: {
    const auto& s = j.steps[p->step];
    render_fallback(st, *s.onerror, j.job_id, s.failed_reason.value_or(""));
    break;
  }
  case statement_kind::job_onsuccess:
    render_fallback(st, *j.onsuccess, j.job_id, "");
    break;
  case statement_kind::job_onerror:
    render_fallback(st, *j.onerror, j.job_id, job_error_message(j));
    break;
  }
  return st;
}

result<void> start(job& j, time_point now) {
  if (!can_transition(j.status, status::running))
    return refusal(j.status, status::running);
  j.status = status::running;
  j.updated_at = iso8601(now);
  settle(j, now);
  return {};
}

result<void> begin(job& j, const statement& st, time_point now) {
  if (j.status == status::pending) {
    if (auto r = start(j, now); !r)
      return r;
  }
  if (j.status != status::running)
    return refusal(j.status, status::running);
  auto p = locate(j);
  position want{st.kind, st.step};
  if (!p || !(*p == want)) {
    // Not the next statement: report what its target's status is.
    status current = status::skipped;
    if (st.kind == statement_kind::step || st.kind == statement_kind::step_onsuccess ||
        st.kind == statement_kind::step_onerror) {
      if (st.step < j.steps.size())
        current = target_status(j, want);
    } else {
      current = j.fallback_status.value_or(status::skipped);
    }
    return refusal(current, status::running);
  }
  auto current = target_status(j, *p);
  if (current == status::running)
    return {};
  set_target_status(j, *p, status::running);
  auto ts = iso8601(now);
  if (p->kind == statement_kind::step) {
    j.steps[p->step].started_at = ts;
    j.steps[p->step].ended_at.reset();
  }
  j.updated_at = ts;
  return {};
}

result<void> apply(job& j, const statement& st, const outcome& o, time_point now) {
  if (is_final(j.status))
    return {};
  if (o.what == outcome::kind::cancelled)
    return cancel(j, now);
  auto to = o.what == outcome::kind::succeeded ? status::done : status::failed;
  auto p = running_position(j);
  if (!p || !(*p == position{st.kind, st.step})) {
    auto cur = locate(j);
    return refusal(cur ? target_status(j, *cur) : j.status, to);
  }
  if (o.what == outcome::kind::failed) {
    record_failure(j, *p, o.message, now);
    return {};
  }
  auto ts = iso8601(now);
  if (p->kind == statement_kind::step) {
    auto& s = j.steps[p->step];
    s.status = status::done;
    s.ended_at = ts;
  } else {
    set_target_status(j, *p, status::done);
  }
  j.updated_at = ts;
  settle(j, now);
  return {};
}

result<void> cancel(job& j, time_point now) {
  if (is_final(j.status))
    return refusal(j.status, status::cancelled);
  auto ts = iso8601(now);
  auto cancel_one = [&](status& x) {
    if (x == status::running)
      x = status::cancelled;
    else
      skip_if_pending(x);
  };
  for (auto& s : j.steps) {
    if (s.status == status::running)
      s.ended_at = ts;
    cancel_one(s.status);
    if (s.fallback_status)
      cancel_one(*s.fallback_status);
  }
  if (j.fallback_status)
    cancel_one(*j.fallback_status);
  j.status = status::cancelled;
  j.updated_at = ts;
  return {};
}

result<void> drain(job& j, time_point now) {
  if (j.status != status::running)
    return {};
  to_pending(j, now);
  return {};
}

result<void> node_lost(job& j, std::string_view node_id, node_loss_mode mode, time_point now) {
  if (j.status != status::running)
    return {};
  if (mode == node_loss_mode::requeue)
    return drain(j, now);
  if (auto p = running_position(j))
    record_failure(j, *p, node_lost_message(node_id), now);
  if (!is_final(j.status))
    to_pending(j, now);
  return {};
}

} // namespace batchq::job
