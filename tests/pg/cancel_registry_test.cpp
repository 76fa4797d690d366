// The node's registry of cancel tokens: a cancel before arming still wins,
// reasons are kept per run, every run gets a fresh token, tombstones expire,
// a user's turn is stopped together, lease deadlines bind the tokens.
#include <thread>

#include <gtest/gtest.h>

#include "src/pg/cancel_registry.hpp"

using batchq::stop_reason;
using batchq::pg::cancel_registry;
using batchq::pg::lease_deadline;

TEST(PgCancelRegistry, ACancelOfAnArmedJobFiresItsTokenWithTheReason) {
  cancel_registry r;
  auto t = r.arm("j1", "ana");
  EXPECT_FALSE(t->cancelled());
  EXPECT_TRUE(r.cancel("j1", stop_reason::user_cancel));
  EXPECT_TRUE(t->cancelled());
  EXPECT_EQ(r.reason("j1", t.get()), stop_reason::user_cancel);
  r.cancel("j1", stop_reason::drain);
  EXPECT_EQ(r.reason("j1", t.get()), stop_reason::user_cancel) << "the first reason wins";
}

TEST(PgCancelRegistry, ACancelThatArrivesBeforeTheRunnerArmsStillWins) {
  cancel_registry r;
  EXPECT_FALSE(r.cancel("j1", stop_reason::user_cancel));
  EXPECT_FALSE(r.armed("j1"));
  auto t = r.arm("j1", "ana");
  EXPECT_TRUE(t->cancelled()) << "the token is born fired";
  EXPECT_EQ(r.reason("j1", t.get()), stop_reason::user_cancel);
}

TEST(PgCancelRegistry, ATombstoneCancelsOneRunOnly) {
  cancel_registry r;
  r.cancel("j1", stop_reason::user_cancel);
  auto first = r.arm("j1", "ana");
  EXPECT_TRUE(first->cancelled());
  r.disarm("j1", first.get());
  EXPECT_FALSE(r.arm("j1", "ana")->cancelled());
}

TEST(PgCancelRegistry, OnlyAUsersCancelLeavesATombstone) {
  cancel_registry r;
  EXPECT_FALSE(r.cancel("j1", stop_reason::drain));
  EXPECT_FALSE(r.cancel("j1", stop_reason::lease_lost));
  EXPECT_FALSE(r.arm("j1", "ana")->cancelled());
}

TEST(PgCancelRegistry, AFiredTokenOfAnEarlierRunIsNeverHandedToALaterRun) {
  cancel_registry r;
  auto old = r.arm("j1", "ana", "turn-1");
  r.cancel_user("ana", "turn-1", stop_reason::lease_lost);
  ASSERT_TRUE(old->cancelled());
  // The same job runs again (it was requeued) before the old run disarmed.
  auto fresh = r.arm("j1", "ana", "turn-2");
  EXPECT_NE(fresh.get(), old.get());
  EXPECT_FALSE(fresh->cancelled());
  EXPECT_EQ(r.reason("j1", fresh.get()), stop_reason::none);
  EXPECT_EQ(r.reason("j1", old.get()), stop_reason::none) << "no longer the job's run";
  // The old run's late disarm leaves the new run armed.
  r.disarm("j1", old.get());
  EXPECT_TRUE(r.armed("j1"));
  r.disarm("j1", fresh.get());
  EXPECT_FALSE(r.armed("j1"));
}

TEST(PgCancelRegistry, WithoutTombstoneAnUnknownJobIsLeftAlone) {
  cancel_registry r;
  EXPECT_FALSE(r.cancel("j1", stop_reason::user_cancel, false));
  EXPECT_FALSE(r.arm("j1", "ana")->cancelled());
}

TEST(PgCancelRegistry, TombstonesExpire) {
  cancel_registry r{std::chrono::seconds{0}};
  r.cancel("j1", stop_reason::user_cancel);
  std::this_thread::sleep_for(std::chrono::milliseconds{5});
  r.cancel("other", stop_reason::user_cancel, false); // purges
  EXPECT_FALSE(r.arm("j1", "ana")->cancelled());
}

TEST(PgCancelRegistry, CancelUserFiresTheArmedJobsOfThatUsersTurnOnly) {
  cancel_registry r;
  auto a1 = r.arm("a1", "ana", "t1");
  auto a2 = r.arm("a2", "ana", "t2");
  auto b1 = r.arm("b1", "bob", "t1");
  EXPECT_EQ(r.cancel_user("ana", "t1", stop_reason::lease_lost), 1);
  EXPECT_TRUE(a1->cancelled());
  EXPECT_FALSE(a2->cancelled());
  EXPECT_FALSE(b1->cancelled());
  EXPECT_EQ(r.reason("a1", a1.get()), stop_reason::lease_lost);
  EXPECT_EQ(r.cancel_user("ana", "", stop_reason::drain), 2) << "any turn of the user";
  EXPECT_TRUE(a2->cancelled());
}

TEST(PgCancelRegistry, DisarmForgetsTheJob) {
  cancel_registry r;
  auto t = r.arm("j1", "ana");
  r.disarm("j1", t.get());
  EXPECT_FALSE(r.armed("j1"));
  EXPECT_EQ(r.reason("j1", t.get()), stop_reason::none);
}

TEST(PgCancelRegistry, ATokenArmedUnderALeaseStopsOnceTheLeaseDeadlinePassed) {
  cancel_registry r;
  auto now = lease_deadline::clock::now();
  auto deadline = r.lease("t1");
  auto t = r.arm("j1", "ana", "t1");
  EXPECT_FALSE(t->stop_requested()) << "no deadline set yet";
  deadline->set(now + std::chrono::hours{1});
  EXPECT_FALSE(t->stop_requested());
  deadline->set(now - std::chrono::milliseconds{1});
  EXPECT_TRUE(t->expired());
  EXPECT_TRUE(t->stop_requested());
  EXPECT_FALSE(t->cancelled()) << "expiry is not a cancel";
  // Another lease's tokens are unaffected, and a forgotten lease binds nothing new.
  EXPECT_FALSE(r.arm("j2", "bob", "t2")->stop_requested());
  r.forget_lease("t1");
  EXPECT_FALSE(r.arm("j3", "ana", "t1")->stop_requested());
  EXPECT_TRUE(t->stop_requested()) << "a bound token keeps its deadline";
}
