// Every message struct survives a round trip through CAF's binary
// serialization (what the middleman does between nodes), and every type is
// registered.
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "messages/type_ids.hpp"

using namespace batchq;

namespace {

struct system_fixture : ::testing::Test {
  static caf::actor_system_config& config() {
    static caf::actor_system_config cfg = [] {
      caf::actor_system_config c;
      register_types(c);
      c.set("scheduler.max-threads", 1);
      return c;
    }();
    return cfg;
  }
  caf::actor_system sys{config()};

  template <class T>
  T round_trip(const T& x) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    auto copy = x;
    EXPECT_FALSE(sink(copy));
    T y;
    caf::binary_deserializer source{sys, buf};
    EXPECT_FALSE(source(y));
    return y;
  }

  // A message holding `x` serialized as a whole (type registration included).
  template <class T>
  T message_round_trip(const T& x) {
    auto msg = caf::make_message(x);
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    EXPECT_FALSE(sink(msg)) << "is " << typeid(T).name() << " registered?";
    caf::message back;
    caf::binary_deserializer source{sys, buf};
    EXPECT_FALSE(source(back));
    EXPECT_TRUE(back.match_elements<T>());
    return back.match_elements<T>() ? back.get_as<T>(0) : T{};
  }
};

} // namespace

TEST_F(system_fixture, JobTicketRoundTrips) {
  job_ticket x{"j1", "ana", "tok", {{"status", "running"}, {"query", "select 'x'"}}};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, TurnRequestAndAnswerRoundTrip) {
  job_write w{"j1", "running", "tok", "done", write_kind::final, {{"status", "done"}},
              {"failed_reason"}};
  turn_request r{"ana", "tok", "db1", "slot", 4, 5000, turn_part::next, "old-tok", {w}};
  EXPECT_EQ(round_trip(w), w);
  EXPECT_EQ(round_trip(r), r);
  EXPECT_EQ(message_round_trip(r), r);
  turn_answer a{true, turn_outcome::recover,
                {job_ticket{"j2", "ana", "tok", {{"status", "running"}, {"claim", "old"}}}}, 3};
  EXPECT_EQ(round_trip(a), a);
  EXPECT_EQ(message_round_trip(a), a);
}

TEST_F(system_fixture, JobOutcomeRoundTrips) {
  job_outcome x;
  x.job_id = "j1";
  x.how = job_end::lost;
  x.written_status = "running";
  x.status = "running";
  x.set = {{"step_status", "done"}};
  x.del = {"x"};
  x.statements_run = 3;
  x.elapsed_ms = 1234;
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
  // The step a runner that goes on sent, with its error.
  x.step_sent = true;
  x.step.user = "alice";
  x.step.part = turn_part::release;
  x.step_error = make_error(ec::lease_lost, "LEASE_LOST alice");
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
  EXPECT_STREQ(to_string(job_end::drained), "drained");
}

TEST_F(system_fixture, TurnGrantAndReportRoundTrip) {
  unsettled_job u{"j1", "tok-1", "running", "done", {{"status", "done"}}, {"failed_reason"}};
  orphan_sighting o{"j0", "tok-0", 1764670000123};
  turn_grant g{"ana", "tok-2", "db1", "slot", 4, 5000, 1, {u}, "tok-1", {o}};
  EXPECT_EQ(round_trip(g), g);
  EXPECT_EQ(message_round_trip(g), g);
  turn_report r{"ana", "tok-2", turn_end::fenced, 2, 5, 1, 0, 7, {u}, {o}};
  EXPECT_EQ(round_trip(r), r);
  EXPECT_EQ(message_round_trip(r), r);
  EXPECT_STREQ(to_string(turn_end::released), "released");
  held_lease h{"ana", "tok-2", "db1", "slot"};
  EXPECT_EQ(round_trip(h), h);
  EXPECT_EQ(message_round_trip(std::vector<held_lease>{h}), std::vector<held_lease>{h});
}

TEST_F(system_fixture, PendingCancelRoundTrips) {
  pending_cancel x{false, "running", "node-7"};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, CancelResultRoundTrips) {
  cancel_result x{"j1", "cancelled"};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, DrainReportRoundTrips) {
  drain_report x{2, 5, 1};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, SchedulerStatsRoundTrips) {
  scheduler_stats x{{"b", "c"}, {"a"}, {"a", "b", "c", "a"}, 1};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, StopReasonRoundTrips) {
  EXPECT_EQ(message_round_trip(stop_reason::lease_lost), stop_reason::lease_lost);
  EXPECT_STREQ(to_string(stop_reason::drain), "drain");
}

TEST_F(system_fixture, ErrorsRenderWithTheirContext) {
  auto err = make_error(ec::invalid_transition, "Cannot set status from done to cancelled");
  EXPECT_EQ(sys.render(err), "batchq.invalid_transition: Cannot set status from done to cancelled");
  EXPECT_TRUE(is(err, ec::invalid_transition));
  EXPECT_EQ(message_of(err), "Cannot set status from done to cancelled");
}
