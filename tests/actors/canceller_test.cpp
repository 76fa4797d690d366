// The canceller on the test coordinator: a mock status actor answering the
// Redis half of cancels from a script, the real pg::cancel_registry (tokens a
// test arms as a runner would), a fake node directory handing out a mock
// remote cluster gate (which checks the proof with the real auth::verifier),
// and a fake backend_cancel. Timers are virtual (advance_time); nothing
// sleeps.
#define CAF_SUITE actors.canceller
#include "tests/actors/fixture.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/canceller.hpp"
#include "actors/cluster_gate.hpp"
#include "messages/error.hpp"
#include "src/metrics/metrics.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

/// The status actor's answers to `cancel`, in order (the last one repeats).
struct status_script {
  std::vector<caf::expected<pending_cancel>> answers;
  int calls = 0;
};

status_actor::behavior_type mock_status(status_actor::pointer,
                                        std::shared_ptr<status_script> script) {
  return {
    [](turn_atom, const turn_request&) -> caf::result<turn_answer> { return turn_answer{}; },
    [=](cancel_atom, const std::string&, const std::string&) -> caf::result<pending_cancel> {
      auto i = std::min<size_t>(script->calls++, script->answers.size() - 1);
      auto& a = script->answers.at(i);
      if (!a)
        return a.error();
      return *a;
    },
    [](cancel_mark_atom, const std::string&) -> caf::result<bool> { return false; },
  };
}

struct remote_log {
  std::vector<std::string> asked;
  std::vector<node_proof> proofs;
  bool answer = true;
  /// The secret the remote gate checks proofs with, and its node id.
  std::string secret = "s3cret";
  std::string node_id = "node-b";
};

/// A MOCK remote cluster gate: checks the proof with the real verifier (at
/// the fixture's pinned clock), records the cancel, answers `answer`.
cluster_gate_actor::behavior_type mock_remote(cluster_gate_actor::pointer,
                                              std::shared_ptr<remote_log> log) {
  return {
    [=](remote_cancel_atom, const std::string& id,
        const node_proof& p) -> caf::result<bool> {
      log->proofs.push_back(p);
      auth::verifier v{log->secret, log->node_id}; // the secret a test set last
      auto verdict = v.check(remote_cancel_kind, id, p, 1'000'000);
      if (verdict != auth::verdict::ok)
        return make_error(ec::refused, std::string{"refused: "} + auth::to_string(verdict));
      log->asked.push_back(id);
      return log->answer;
    },
  };
}

/// FAKE node directory: known nodes -> their gate; others unreachable.
struct fake_directory : ports::node_directory {
  std::map<std::string, cluster_gate_actor> nodes;
  std::vector<std::string> asked;
  caf::expected<cluster_gate_actor> gate_of(const std::string& node_id) override {
    asked.push_back(node_id);
    auto i = nodes.find(node_id);
    if (i == nodes.end())
      return make_error(ec::redis_unavailable, "node " + node_id + " unreachable");
    return i->second;
  }
};

uint64_t cancels(std::string_view path) {
  for (size_t i = 0; i < metrics::cancel_paths.size(); ++i)
    if (metrics::cancel_paths[i] == path)
      return metrics::global().cancel_requests[i].load();
  return 0;
}

/// FAKE backend_cancel: records calls, answers `signalled`.
struct fake_backend : ports::backend_cancel {
  std::vector<std::pair<std::string, std::string>> calls;
  int signalled = 1;
  caf::expected<int> cancel_backends_of_job(const std::string& job_id,
                                            const std::string& user) override {
    calls.emplace_back(job_id, user);
    return signalled;
  }
  caf::expected<int> stop_backends_of_job(const std::string& job_id, const std::string& user,
                                          std::chrono::milliseconds) override {
    return cancel_backends_of_job(job_id, user);
  }
};

pending_cancel cancelled_now() {
  return pending_cancel{true, "cancelled", ""};
}
pending_cancel reported(std::string status, std::string node = "") {
  return pending_cancel{false, std::move(status), std::move(node)};
}

struct canceller_fixture : batchq::test::actor_fixture {
  std::shared_ptr<status_script> script = std::make_shared<status_script>();
  status_actor status = sys.spawn(mock_status, script);
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  std::shared_ptr<fake_directory> directory = std::make_shared<fake_directory>();
  std::shared_ptr<fake_backend> backend = std::make_shared<fake_backend>();
  std::shared_ptr<remote_log> remote_seen = std::make_shared<remote_log>();
  cluster_gate_actor remote = sys.spawn(mock_remote, remote_seen);
  canceller_settings cfg;
  canceller_actor canceller;

  canceller_fixture() {
    cfg.node_id = "node-a";
    cfg.cancel_wait = 1s;
    cfg.cluster_secret = "s3cret";
    cfg.now_ms = [] { return int64_t{1'000'000}; };
    directory->nodes["node-b"] = remote;
    canceller = spawn_canceller(sys, cfg, status, registry, directory, backend, false);
    sched.run();
  }

  struct reply {
    bool got = false;
    std::optional<cancel_result> ok;
    caf::error err;
  };

  /// The canceller's answer to `self`, if it came.
  reply take() {
    reply r;
    self->receive(
      [&](cancel_result& x) {
        r.got = true;
        r.ok = x;
      },
      [&](caf::error& e) {
        r.got = true;
        r.err = e;
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
    return r;
  }

  std::optional<bool> take_bool() {
    std::optional<bool> out;
    self->receive([&](bool x) { out = x; }, caf::after(std::chrono::seconds(0)) >> [] {});
    return out;
  }

  reply cancel(const std::string& id, const std::string& user = "alice") {
    self->send(canceller, cancel_atom::value, id, user);
    sched.run();
    return take();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(canceller_tests, canceller_fixture)

CAF_TEST(a pending job is cancelled in Redis and the answer says cancelled) {
  script->answers = {cancelled_now()};
  auto before = cancels("pending");
  auto r = cancel("j1");
  CAF_CHECK_EQUAL(cancels("pending"), before + 1);
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "cancelled"}));
  CAF_CHECK_EQUAL(script->calls, 1);
}

CAF_TEST(a final job is refused with the transition message) {
  script->answers = {reported("done")};
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && !r.ok);
  CAF_CHECK(batchq::is(r.err, ec::invalid_transition));
  CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from done to cancelled");
  script->answers = {reported("cancelled")};
  script->calls = 0;
  r = cancel("j1");
  CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from cancelled to cancelled");
}

CAF_TEST(an unknown or foreign job is not found) {
  script->answers = {caf::expected<pending_cancel>{
    make_error(ec::job_not_found, "Job with id j9 not found")}};
  auto r = cancel("j9", "mallory");
  CAF_REQUIRE(r.got && !r.ok);
  CAF_CHECK(batchq::is(r.err, ec::job_not_found));
  CAF_CHECK_EQUAL(message_of(r.err), "Job with id j9 not found");
}

CAF_TEST(a job running here has its token fired and the answer waits for the final) {
  auto token = registry->arm("j1", "alice");
  script->answers = {reported("running", "node-a")};
  auto before = cancels("local");
  auto r = cancel("j1");
  CAF_CHECK_EQUAL(cancels("local"), before + 1);
  CAF_CHECK(!r.got);
  CAF_CHECK(token->cancelled());
  CAF_CHECK_EQUAL(to_string(registry->reason("j1", token.get())), std::string{"user_cancel"});
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"cancelled"});
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "cancelled"}));
  CAF_CHECK(directory->asked.empty());
  CAF_CHECK(backend->calls.empty());
}

CAF_TEST(a cancel before the runner armed leaves a tombstone so its token is born fired) {
  script->answers = {reported("running", "node-a")};
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  auto token = registry->arm("j1", "alice"); // the runner starts only now
  CAF_CHECK(token->cancelled());
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"cancelled"});
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(r.ok->status, "cancelled");
}

CAF_TEST(a job that finished before the cancel landed is refused) {
  registry->arm("j1", "alice");
  script->answers = {reported("running", "node-a")};
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"done"});
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && !r.ok);
  CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from done to cancelled");
}

CAF_TEST(a cancel arriving just after the runner ended answers from its final) {
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"done"});
  sched.run();
  script->answers = {reported("running", "node-a")}; // Redis read raced with the last write
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && !r.ok);
  CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from done to cancelled");
}

CAF_TEST(a job drained before the cancel landed is cancelled in the queue) {
  registry->arm("j1", "alice");
  script->answers = {reported("running", "node-a"), cancelled_now()};
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"pending"});
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(r.ok->status, "cancelled");
  CAF_CHECK_EQUAL(script->calls, 2);
}

CAF_TEST(without a final within cancel_wait the current status is reported) {
  registry->arm("j1", "alice");
  script->answers = {reported("running", "node-a")};
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  advance_time(cfg.cancel_wait);
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "running"}));
  CAF_CHECK_EQUAL(script->calls, 2);
}

CAF_TEST(a job running on another node is cancelled by that node) {
  script->answers = {reported("running", "node-b"), reported("cancelled", "node-b")};
  auto before = cancels("node");
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "cancelled"}));
  CAF_CHECK_EQUAL(directory->asked, std::vector<std::string>{"node-b"});
  CAF_CHECK_EQUAL(remote_seen->asked, std::vector<std::string>{"j1"});
  CAF_REQUIRE_EQUAL(remote_seen->proofs.size(), 1u);
  CAF_CHECK_EQUAL(remote_seen->proofs[0].from, "node-a");
  CAF_CHECK_EQUAL(remote_seen->proofs[0].to, "node-b");
  CAF_CHECK_EQUAL(remote_seen->proofs[0].mac.size(), 64u);
  CAF_CHECK(backend->calls.empty());
  CAF_CHECK(!registry->armed("j1"));
  CAF_CHECK_EQUAL(cancels("node"), before + 1);
}

CAF_TEST(a job recorded as running on this node is never sent to a remote gate) {
  script->answers = {reported("running", "node-a")};
  auto r = cancel("j1");
  CAF_CHECK(!r.got); // waits for the local runner's final
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"cancelled"});
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(r.ok->status, "cancelled");
  CAF_CHECK(directory->asked.empty());
  CAF_CHECK(remote_seen->proofs.empty());
}

CAF_TEST(a gate that refuses the proof leads to the fallback) {
  remote_seen->secret = "another secret";
  script->answers = {reported("running", "node-b"), reported("cancelled", "node-b")};
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "cancelled"}));
  CAF_CHECK(remote_seen->asked.empty());
  CAF_CHECK_EQUAL(backend->calls.size(), 1u);
}

CAF_TEST(an unreachable node falls back to pg_cancel_backend and answers once Redis records it) {
  // The remote runner records the cancel a little later (it sees 57014 and
  // the cancel mark): the answer waits for that, polling Redis.
  script->answers = {reported("running", "node-gone"), reported("running", "node-gone"),
                     reported("cancelled", "node-gone")};
  auto before = cancels("backend");
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  CAF_CHECK_EQUAL(directory->asked, std::vector<std::string>{"node-gone"});
  CAF_REQUIRE_EQUAL(backend->calls.size(), 1u);
  CAF_CHECK_EQUAL(backend->calls[0].first, "j1");
  CAF_CHECK_EQUAL(backend->calls[0].second, "alice");
  CAF_CHECK_EQUAL(cancels("backend"), before + 1);
  advance_time(cfg.record_poll);
  sched.run();
  r = take();
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "cancelled"}));
  CAF_CHECK_EQUAL(script->calls, 3);
}

CAF_TEST(a fallback cancel that Redis does not record in time is answered as running) {
  script->answers = {reported("running", "node-gone")};
  auto r = cancel("j1");
  CAF_CHECK(!r.got);
  for (auto t = std::chrono::milliseconds{0}; t <= cfg.cancel_wait && !r.got;
       t += cfg.record_poll) {
    advance_time(cfg.record_poll);
    sched.run();
    r = take();
  }
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "running"}));
}

CAF_TEST(a job that failed on its own after the fallback is refused truthfully) {
  script->answers = {reported("running", "node-gone"), reported("failed", "node-gone")};
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && !r.ok);
  CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from failed to cancelled");
}

CAF_TEST(a remote node that did not run the job leads to the fallback) {
  remote_seen->answer = false;
  backend->signalled = 0; // nothing to signal either: report what Redis says
  script->answers = {reported("running", "node-b"), reported("running", "node-b")};
  auto r = cancel("j1");
  CAF_REQUIRE(r.got && r.ok);
  CAF_CHECK_EQUAL(*r.ok, (cancel_result{"j1", "running"}));
  CAF_CHECK_EQUAL(remote_seen->asked.size(), 1u);
  CAF_CHECK_EQUAL(backend->calls.size(), 1u);
}

CAF_TEST(a remote cancel fires the local token and answers true once the runner ends) {
  auto token = registry->arm("j1", "alice");
  self->send(canceller, remote_cancel_atom::value, std::string{"j1"});
  sched.run();
  CAF_CHECK(token->cancelled());
  CAF_CHECK(!take_bool());
  self->send(canceller, final_atom::value, std::string{"j1"}, std::string{"cancelled"});
  sched.run();
  auto b = take_bool();
  CAF_REQUIRE(b.has_value());
  CAF_CHECK(*b);
}

CAF_TEST(a remote cancel for a job not here answers false after cancel_wait) {
  self->send(canceller, remote_cancel_atom::value, std::string{"j7"});
  sched.run();
  CAF_CHECK(!take_bool());
  advance_time(cfg.cancel_wait);
  sched.run();
  auto b = take_bool();
  CAF_REQUIRE(b.has_value());
  CAF_CHECK(!*b);
}

CAF_TEST(stop fires the tokens of that users turn only) {
  auto a1 = registry->arm("a1", "alice", "turn-1");
  auto a2 = registry->arm("a2", "alice", "turn-1");
  auto old = registry->arm("a0", "alice", "turn-0");
  auto b1 = registry->arm("b1", "bob", "turn-1");
  self->send(canceller, stop_atom::value, std::string{"alice"}, std::string{"turn-1"},
             stop_reason::drain);
  sched.run();
  CAF_CHECK(a1->cancelled());
  CAF_CHECK(a2->cancelled());
  CAF_CHECK(!old->cancelled());
  CAF_CHECK(!b1->cancelled());
  CAF_CHECK_EQUAL(to_string(registry->reason("a1", a1.get())), std::string{"drain"});
  CAF_CHECK_EQUAL(to_string(registry->reason("b1", b1.get())), std::string{"none"});
}

CAF_TEST_FIXTURE_SCOPE_END()
