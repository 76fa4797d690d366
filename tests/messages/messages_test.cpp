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

TEST_F(system_fixture, StateWriteRoundTrips) {
  state_write x{"j1", "ana", "tok", "running", "done", {{"status", "done"}}, {"failed_reason"}};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, JobSummaryRoundTrips) {
  job_summary x{"j1", "failed", 3, 1234};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
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
  drain_report x{2, 5};
  EXPECT_EQ(round_trip(x), x);
  EXPECT_EQ(message_round_trip(x), x);
}

TEST_F(system_fixture, SchedulerStatsRoundTrips) {
  scheduler_stats x{{"b", "c"}, {"a"}, {"a", "b", "c", "a"}};
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
