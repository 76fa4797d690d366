// src/redis/client and src/redis/subscription against the real Redis.
#include "src/redis/client.hpp"

#include <chrono>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/redis/subscription.hpp"
#include "tests/redis/redis_test_support.hpp"

using namespace std::chrono_literals;
using batchq::ec;
using batchq::is;
using batchq::message_of;
using namespace batchq::redis;
using batchq::redis::test::must;
using batchq::redis::test::test_endpoint;

namespace {

/// A loopback port nobody listens on (bound, then closed again).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

auto elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::steady_clock::now() - t0;
}

} // namespace

TEST(RedisClient, ConvertsEveryReplyKindToAValue) {
  client c{test_endpoint()};
  auto key = batchq::test::unique_name("rt_kinds");
  EXPECT_EQ(must(c, {"SET", key, "v"}).type, reply::kind::status);
  EXPECT_EQ(must(c, {"SET", key, "v"}).str, "OK");
  auto n = must(c, {"STRLEN", key});
  EXPECT_TRUE(n.is_integer());
  EXPECT_EQ(n.integer, 1);
  EXPECT_TRUE(must(c, {"GET", key + "_missing"}).is_nil());
  must(c, {"DEL", key});
  must(c, {"RPUSH", key, "a", "b"});
  auto arr = must(c, {"LRANGE", key, "0", "-1"});
  ASSERT_TRUE(arr.is_array());
  ASSERT_EQ(arr.elements.size(), 2u);
  EXPECT_EQ(arr.elements[0].str, "a");
  EXPECT_EQ(arr.elements[1].str, "b");
  EXPECT_EQ(arr.to_string(), R"(["a", "b"])");
  must(c, {"DEL", key});
}

TEST(RedisClient, SendsArgumentsBinarySafe) {
  client c{test_endpoint()};
  auto key = batchq::test::unique_name("rt_bin");
  std::string value{"a\0b\r\n c %s", 10};
  must(c, {"SET", key, value});
  auto r = must(c, {"GET", key});
  EXPECT_EQ(r.str, value);
  EXPECT_EQ(r.str.size(), 10u);
  must(c, {"DEL", key});
}

TEST(RedisClient, ErrorReplyBecomesRedisErrorAndKeepsTheConnection) {
  client c{test_endpoint()};
  auto key = batchq::test::unique_name("rt_err");
  must(c, {"SET", key, "v"});
  auto r = c.command({"LPUSH", key, "x"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_error));
  EXPECT_NE(message_of(r.error()).find("WRONGTYPE"), std::string::npos) << message_of(r.error());
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(must(c, {"GET", key}).str, "v");
  EXPECT_EQ(c.connects(), 1u);
  must(c, {"DEL", key});
}

TEST(RedisClient, SelectsTheConfiguredDatabase) {
  client c{test_endpoint()};
  auto info = must(c, {"CLIENT", "INFO"});
  EXPECT_NE(info.str.find(" db=" + std::to_string(test::test_db) + " "), std::string::npos)
    << info.str;
}

TEST(RedisClient, DatabaseOutOfRangeIsARedisErrorNotACrash) {
  auto ep = test_endpoint();
  ep.db = 99999;
  client c{ep};
  auto r = c.command({"PING"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_error)) << message_of(r.error());
  EXPECT_FALSE(c.connected());
}

TEST(RedisClient, PipelineSendsAllCommandsInOneRoundTrip) {
  client c{test_endpoint()};
  auto key = batchq::test::unique_name("rt_pipe");
  ASSERT_FALSE(c.ensure_connected());
  auto before = c.round_trips();
  auto r = c.pipeline({{"SET", key, "1"}, {"INCR", key}, {"LPUSH", key, "x"}, {"GET", key}});
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(c.round_trips() - before, 1u);
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].str, "OK");
  EXPECT_EQ((*r)[1].integer, 2);
  EXPECT_TRUE((*r)[2].is_error()); // error replies stay in place
  EXPECT_EQ((*r)[3].str, "2");
  must(c, {"DEL", key});
}

TEST(RedisClient, ClosedPortFailsQuicklyWithRedisUnavailable) {
  auto ep = test_endpoint();
  ep.port = closed_port();
  client c{ep, backoff_policy{1000ms, 2000ms}};
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.command({"PING"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_unavailable)) << message_of(r.error());
  EXPECT_LT(elapsed_since(t0), 500ms);
  // During the backoff the next call fails fast without a connect attempt.
  auto r2 = c.command({"PING"});
  ASSERT_FALSE(r2);
  EXPECT_TRUE(is(r2.error(), ec::redis_unavailable));
  EXPECT_NE(message_of(r2.error()).find("next reconnect in"), std::string::npos)
    << message_of(r2.error());
  EXPECT_EQ(c.connects(), 0u);
}

TEST(RedisClient, BackoffDoublesPerFailureUpToTheCap) {
  auto ep = test_endpoint();
  ep.port = closed_port();
  client c{ep, backoff_policy{100ms, 400ms}};
  // The windows (expected/2, expected] do not overlap: 100, 200, 400, 400.
  for (auto expected : {100ms, 200ms, 400ms, 400ms}) {
    while (c.retry_in() > 0ms)
      std::this_thread::sleep_for(1ms);
    ASSERT_FALSE(c.command({"PING"}));
    EXPECT_LE(c.retry_in(), expected);
    EXPECT_GT(c.retry_in(), expected / 2);
  }
}

TEST(RedisClient, ReconnectsAfterItsConnectionIsKilled) {
  client c{test_endpoint(), backoff_policy{500ms, 2000ms}};
  auto id = must(c, {"CLIENT", "ID"}).integer;
  client killer{test_endpoint()};
  EXPECT_EQ(must(killer, {"CLIENT", "KILL", "ID", std::to_string(id)}).integer, 1);
  auto r = c.command({"PING"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_unavailable)) << message_of(r.error());
  EXPECT_FALSE(c.connected());
  // Within the backoff: fails fast.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_FALSE(c.command({"PING"}));
  EXPECT_LT(elapsed_since(t0), 100ms);
  // After it: reconnects, SELECTs again and works.
  std::this_thread::sleep_for(550ms);
  auto ok = c.command({"PING"});
  ASSERT_TRUE(ok) << message_of(ok.error());
  EXPECT_EQ(ok->str, "PONG");
  EXPECT_EQ(c.connects(), 2u);
  EXPECT_NE(must(c, {"CLIENT", "INFO"}).str.find(" db=" + std::to_string(test::test_db) + " "),
            std::string::npos);
}

TEST(RedisClient, LargeWriteToAKilledConnectionFailsWithoutSigpipe) {
  client c{test_endpoint()};
  auto id = must(c, {"CLIENT", "ID"}).integer;
  client killer{test_endpoint()};
  must(killer, {"CLIENT", "KILL", "ID", std::to_string(id)});
  std::this_thread::sleep_for(20ms);
  std::string big(8 << 20, 'x');
  auto key = batchq::test::unique_name("rt_big");
  // Two writes: the first may land in the socket buffer; the second meets the
  // closed socket (EPIPE) -- the process must survive both.
  auto r = c.pipeline({{"SET", key, big}, {"SET", key, big}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_unavailable)) << message_of(r.error());
}

TEST(RedisSubscription, ReceivesMessagesPublishedAfterOpen) {
  auto channel = batchq::test::unique_name("rt_chan");
  auto sub = subscription::open(test_endpoint(), {channel});
  ASSERT_TRUE(sub) << message_of(sub.error());
  client c{test_endpoint()};
  must(c, {"PUBLISH", channel, "alice"});
  must(c, {"PUBLISH", channel, "bob"});
  auto m1 = (*sub)->next(2000ms);
  ASSERT_TRUE(m1 && *m1);
  EXPECT_EQ((*m1)->channel, channel);
  EXPECT_EQ((*m1)->payload, "alice");
  auto m2 = (*sub)->next(2000ms);
  ASSERT_TRUE(m2 && *m2);
  EXPECT_EQ((*m2)->payload, "bob");
}

TEST(RedisSubscription, NextTimesOutWithNothingAndStaysUsable) {
  auto channel = batchq::test::unique_name("rt_chan");
  auto sub = subscription::open(test_endpoint(), {channel});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto t0 = std::chrono::steady_clock::now();
  auto m = (*sub)->next(50ms);
  ASSERT_TRUE(m) << message_of(m.error());
  EXPECT_FALSE(*m);
  EXPECT_GE(elapsed_since(t0), 45ms);
  client c{test_endpoint()};
  must(c, {"PUBLISH", channel, "carol"});
  auto m2 = (*sub)->next(2000ms);
  ASSERT_TRUE(m2 && *m2);
  EXPECT_EQ((*m2)->payload, "carol");
}

TEST(RedisSubscription, InterruptWakesABlockedReaderFromAnotherThread) {
  auto channel = batchq::test::unique_name("rt_chan");
  auto sub = subscription::open(test_endpoint(), {channel});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto* s = sub->get();
  std::thread stopper{[s] {
    std::this_thread::sleep_for(50ms);
    s->interrupt();
  }};
  auto t0 = std::chrono::steady_clock::now();
  auto m = s->next(std::chrono::milliseconds{-1});
  stopper.join();
  ASSERT_FALSE(m);
  EXPECT_TRUE(is(m.error(), ec::redis_unavailable));
  EXPECT_LT(elapsed_since(t0), 1000ms);
}

TEST(RedisSubscription, ClosedPortIsRedisUnavailable) {
  auto ep = test_endpoint();
  ep.port = closed_port();
  auto sub = subscription::open(ep, {"batch:users"});
  ASSERT_FALSE(sub);
  EXPECT_TRUE(is(sub.error(), ec::redis_unavailable));
}
