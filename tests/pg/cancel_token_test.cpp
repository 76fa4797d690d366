// Unit tests for src/pg/cancel_token (no server).
#include "src/pg/cancel_token.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>

using batchq::pg::cancel_token;

TEST(PgCancelToken, StartsUncancelledWithAQuietWakeFd) {
  auto t = cancel_token::make();
  EXPECT_FALSE(t->cancelled());
  ASSERT_GE(t->wake_fd(), 0);
  pollfd p{t->wake_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST(PgCancelToken, CancelFromManyThreadsIsIdempotentAndWakesTheFd) {
  auto t = cancel_token::make();
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([t] { t->cancel(); });
  for (auto& th : threads)
    th.join();
  EXPECT_TRUE(t->cancelled());
  pollfd p{t->wake_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 1);
  t->cancel();
  EXPECT_TRUE(t->cancelled());
}
