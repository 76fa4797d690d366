// The state machine (SPEC §3.3) and the time format of the job model.
#include "src/job/clock.hpp"
#include "src/job/status.hpp"
#include "tests/job/driver.hpp"

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

const status all[] = {status::pending,   status::running, status::done,   status::failed,
                      status::cancelled, status::skipped, status::unknown};

TEST(StateMachine, AllowsExactlyTheTransitionsOfTheSpec) {
  std::set<std::pair<status, status>> allowed = {
      {status::pending, status::running}, {status::pending, status::cancelled},
      {status::pending, status::skipped}, {status::running, status::done},
      {status::running, status::failed},  {status::running, status::cancelled},
      {status::running, status::pending}};
  for (auto from : all)
    for (auto to : all)
      EXPECT_EQ(can_transition(from, to), allowed.count({from, to}) == 1)
          << to_string(from) << " -> " << to_string(to);
}

TEST(StateMachine, RefusesWithTheExactCartoText) {
  EXPECT_EQ(transition_refusal(status::done, status::cancelled),
            "Cannot set status from done to cancelled");
  EXPECT_EQ(transition_refusal(status::skipped, status::running),
            "Cannot set status from skipped to running");
}

TEST(StateMachine, FinalStatusesAreDoneFailedCancelledAndUnknown) {
  for (auto x : all)
    EXPECT_EQ(is_final(x), x == status::done || x == status::failed || x == status::cancelled ||
                               x == status::unknown)
        << to_string(x);
}

TEST(StateMachine, StatusNamesRoundTripAndOthersAreRejected) {
  for (auto x : all)
    EXPECT_EQ(parse_status(to_string(x)), x);
  EXPECT_FALSE(parse_status("Done").has_value());
  EXPECT_FALSE(parse_status("").has_value());
}

TEST(Clock, FormatsIso8601UtcWithMilliseconds) {
  EXPECT_EQ(iso8601(test::at(905)), "2026-11-28T17:36:10.905Z");
  EXPECT_EQ(iso8601(time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(Clock, ParsesWhatItFormatsAndRejectsOtherText) {
  EXPECT_EQ(parse_iso8601("2026-11-28T17:36:10.905Z"), test::at(905));
  EXPECT_EQ(parse_iso8601("2026-11-28T17:36:10Z"), test::at(0));
  EXPECT_FALSE(parse_iso8601("2026-11-28 17:36:10").has_value());
  EXPECT_FALSE(parse_iso8601("2026-11-28T17:36:10.905").has_value());
  EXPECT_FALSE(parse_iso8601("yesterday").has_value());
}

} // namespace
} // namespace batchq::job
