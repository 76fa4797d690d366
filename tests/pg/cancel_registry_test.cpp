// The node's registry of cancel tokens: a cancel before arming still wins,
// reasons are kept, tombstones expire, a user's jobs are stopped together.
#include <thread>

#include <gtest/gtest.h>

#include "src/pg/cancel_registry.hpp"

using batchq::stop_reason;
using batchq::pg::cancel_registry;

TEST(PgCancelRegistry, ACancelOfAnArmedJobFiresItsTokenWithTheReason) {
  cancel_registry r;
  auto t = r.arm("j1", "ana");
  EXPECT_FALSE(t->cancelled());
  EXPECT_TRUE(r.cancel("j1", stop_reason::user_cancel));
  EXPECT_TRUE(t->cancelled());
  EXPECT_EQ(r.reason("j1"), stop_reason::user_cancel);
  r.cancel("j1", stop_reason::drain);
  EXPECT_EQ(r.reason("j1"), stop_reason::user_cancel) << "the first reason wins";
}

TEST(PgCancelRegistry, ACancelThatArrivesBeforeTheRunnerArmsStillWins) {
  cancel_registry r;
  EXPECT_FALSE(r.cancel("j1", stop_reason::user_cancel));
  EXPECT_FALSE(r.armed("j1"));
  auto t = r.arm("j1", "ana");
  EXPECT_TRUE(t->cancelled()) << "the token is born fired";
  EXPECT_EQ(r.reason("j1"), stop_reason::user_cancel);
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

TEST(PgCancelRegistry, CancelUserFiresEveryArmedJobOfThatUserOnly) {
  cancel_registry r;
  auto a1 = r.arm("a1", "ana");
  auto a2 = r.arm("a2", "ana");
  auto b1 = r.arm("b1", "bob");
  EXPECT_EQ(r.cancel_user("ana", stop_reason::lease_lost), 2);
  EXPECT_TRUE(a1->cancelled());
  EXPECT_TRUE(a2->cancelled());
  EXPECT_FALSE(b1->cancelled());
  EXPECT_EQ(r.reason("a2"), stop_reason::lease_lost);
}

TEST(PgCancelRegistry, DisarmForgetsTheJob) {
  cancel_registry r;
  r.arm("j1", "ana");
  r.disarm("j1");
  EXPECT_FALSE(r.armed("j1"));
  EXPECT_EQ(r.reason("j1"), stop_reason::none);
}
