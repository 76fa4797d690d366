// The cluster gate on the test coordinator, in front of a MOCK canceller that
// records the remote cancels it is asked: only a message with a valid proof
// (src/auth/node_proof.hpp) reaches it; every other is refused with the
// reason and counted. The gate's clock is pinned; nothing sleeps.
#define CAF_SUITE actors.cluster_gate
#include "tests/actors/fixture.hpp"

#include <memory>
#include <string>
#include <vector>

#include "actors/cluster_gate.hpp"
#include "messages/error.hpp"
#include "src/auth/node_proof.hpp"
#include "src/metrics/metrics.hpp"

using namespace batchq;

namespace {

constexpr int64_t t0 = 1'700'000'000'000;

struct asked {
  std::vector<std::string> ids;
};

canceller_actor::behavior_type mock_canceller(canceller_actor::pointer,
                                              std::shared_ptr<asked> log) {
  return {
    [](cancel_atom, const std::string& id, const std::string&) -> caf::result<cancel_result> {
      return cancel_result{id, "cancelled"};
    },
    [=](remote_cancel_atom, const std::string& id) -> caf::result<bool> {
      log->ids.push_back(id);
      return true;
    },
    [](stop_atom, const std::string&, const std::string&, stop_reason) {},
    [](final_atom, const std::string&, const std::string&) {},
  };
}

uint64_t refused(std::string_view reason) {
  for (size_t i = 0; i < metrics::refusal_reasons.size(); ++i)
    if (metrics::refusal_reasons[i] == reason)
      return metrics::global().cluster_refused[i].load();
  return 0;
}

struct gate_fixture : batchq::test::actor_fixture {
  std::shared_ptr<asked> seen = std::make_shared<asked>();
  canceller_actor canceller = sys.spawn(mock_canceller, seen);
  int64_t now = t0;

  cluster_gate_actor gate_with(std::string secret) {
    cluster_gate_settings cfg;
    cfg.node_id = "node-b";
    cfg.secret = std::move(secret);
    cfg.now_ms = [this] { return now; };
    auto g = spawn_cluster_gate(sys, cfg, canceller);
    sched.run();
    return g;
  }

  struct reply {
    bool got = false;
    bool ran = false;
    caf::error err;
  };

  reply send(const cluster_gate_actor& g, const std::string& id, const node_proof& p) {
    self->send(g, remote_cancel_atom::value, id, p);
    sched.run();
    reply r;
    self->receive(
      [&](bool b) {
        r.got = true;
        r.ran = b;
      },
      [&](caf::error& e) {
        r.got = true;
        r.err = e;
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
    return r;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cluster_gate_tests, gate_fixture)

CAF_TEST(a proof made with the shared secret for this node passes the cancel on) {
  auto g = gate_with("s3cret");
  auto r = send(g, "j1", auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now));
  CAF_REQUIRE(r.got);
  CAF_CHECK(!r.err);
  CAF_CHECK(r.ran);
  CAF_CHECK_EQUAL(seen->ids, std::vector<std::string>{"j1"});
}

CAF_TEST(a wrong or missing proof is refused and counted and reaches nothing) {
  auto g = gate_with("s3cret");
  auto bad0 = refused("bad_proof");
  auto missing0 = refused("missing_proof");
  auto r = send(g, "j1", auth::sign("guess", "node-a", "node-b", remote_cancel_kind, "j1", now));
  CAF_REQUIRE(r.got);
  CAF_CHECK(batchq::is(r.err, ec::refused));
  CAF_CHECK_EQUAL(message_of(r.err), "refused: bad_proof");
  r = send(g, "j1", auth::sign("", "node-a", "node-b", remote_cancel_kind, "j1", now));
  CAF_CHECK_EQUAL(message_of(r.err), "refused: missing_proof");
  CAF_CHECK_EQUAL(refused("bad_proof"), bad0 + 1);
  CAF_CHECK_EQUAL(refused("missing_proof"), missing0 + 1);
  CAF_CHECK(seen->ids.empty());
}

CAF_TEST(a proof is bound to the job id and to the kind of message) {
  auto g = gate_with("s3cret");
  auto p = auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now);
  auto r = send(g, "j2", p); // the same proof for another job
  CAF_CHECK_EQUAL(message_of(r.err), "refused: bad_proof");
  r = send(g, "j1", auth::sign("s3cret", "node-a", "node-b", "other_kind", "j1", now));
  CAF_CHECK_EQUAL(message_of(r.err), "refused: bad_proof");
  CAF_CHECK(seen->ids.empty());
}

CAF_TEST(a message meant for another node is refused so a node never cancels for another) {
  auto g = gate_with("s3cret");
  auto before = refused("wrong_node");
  auto r = send(g, "j1", auth::sign("s3cret", "node-a", "node-c", remote_cancel_kind, "j1", now));
  CAF_CHECK_EQUAL(message_of(r.err), "refused: wrong_node");
  CAF_CHECK_EQUAL(refused("wrong_node"), before + 1);
  CAF_CHECK(seen->ids.empty());
}

CAF_TEST(a replayed or stale proof is refused) {
  auto g = gate_with("s3cret");
  auto p = auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now);
  CAF_CHECK(send(g, "j1", p).ran);
  auto r = send(g, "j1", p);
  CAF_CHECK_EQUAL(message_of(r.err), "refused: replayed");
  auto old = auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now - 61'000);
  CAF_CHECK_EQUAL(message_of(send(g, "j1", old).err), "refused: stale");
  auto future = auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now + 61'000);
  CAF_CHECK_EQUAL(message_of(send(g, "j1", future).err), "refused: stale");
  // Within the window, a clock 30 s apart is fine.
  auto skewed = auth::sign("s3cret", "node-a", "node-b", remote_cancel_kind, "j1", now - 30'000);
  CAF_CHECK(send(g, "j1", skewed).ran);
  CAF_CHECK_EQUAL(seen->ids.size(), 2u);
}

CAF_TEST(a gate without a secret on a loopback cluster still checks target freshness and replay) {
  auto g = gate_with("");
  auto p = auth::sign("", "node-a", "node-b", remote_cancel_kind, "j1", now);
  CAF_CHECK(p.mac.empty());
  CAF_CHECK(send(g, "j1", p).ran);
  CAF_CHECK_EQUAL(message_of(send(g, "j1", p).err), "refused: replayed");
  auto other = auth::sign("", "node-a", "node-c", remote_cancel_kind, "j1", now);
  CAF_CHECK_EQUAL(message_of(send(g, "j1", other).err), "refused: wrong_node");
}

CAF_TEST(proofs differ per message and the mac is hex sha256) {
  auto a = auth::sign("k", "x", "y", remote_cancel_kind, "j", t0);
  auto b = auth::sign("k", "x", "y", remote_cancel_kind, "j", t0);
  CAF_CHECK_NOT_EQUAL(a.nonce, b.nonce);
  CAF_CHECK_NOT_EQUAL(a.mac, b.mac);
  CAF_CHECK_EQUAL(a.mac.size(), 64u);
  CAF_CHECK_EQUAL(a.nonce.size(), 32u);
  CAF_CHECK_EQUAL(a.mac.find_first_not_of("0123456789abcdef"), std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
