// src/http without servers: which user a request addresses, which key it
// presents, the key rule, the query parameters and the ec -> status table.
#include <regex>

#include <caf/sec.hpp>
#include <gtest/gtest.h>

#include "messages/error.hpp"
#include "src/http/auth.hpp"
#include "src/http/errors.hpp"
#include "src/http/jobs.hpp"

using namespace batchq;
using namespace batchq::http;
using nlohmann::json;

namespace {

const std::regex default_host_regex{R"(^([^.]+)\.)"};

std::string basic(const std::string& user_pass) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : user_pass) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0)
    out += alphabet[(acc << (6 - bits)) & 0x3F];
  while (out.size() % 4 != 0)
    out += '=';
  return "Basic " + out;
}

} // namespace

TEST(HttpUser, ThePathWinsOverTheHostHeader) {
  EXPECT_EQ(user_of("alice", "bob.example.com", default_host_regex), "alice");
}

TEST(HttpUser, TheHostHeaderNamesTheUserByTheFirstGroup) {
  EXPECT_EQ(user_of("", "bob.carto.com", default_host_regex), "bob");
  EXPECT_EQ(user_of("", "127.0.0.1:8080", default_host_regex), "127");
}

TEST(HttpUser, AHostWithoutMatchNamesNoUser) {
  EXPECT_EQ(user_of("", "localhost:8080", default_host_regex), "");
  EXPECT_EQ(user_of("", "", default_host_regex), "");
}

TEST(HttpKey, BasicAuthPresentsThePasswordWhenTheUserPartIsTheUser) {
  auto k = find_key(basic("alice:s3cr:et"), json::object(), "alice");
  EXPECT_EQ(k.key, "s3cr:et");
  EXPECT_EQ(k.source, "basic");
}

TEST(HttpKey, BasicAuthForAnotherUserPresentsNoKey) {
  EXPECT_EQ(find_key(basic("mallory:key"), json::object(), "alice").key, "");
  EXPECT_EQ(find_key("Basic !!!notbase64", json::object(), "alice").key, "");
}

TEST(HttpKey, BearerIsCaseInsensitiveAndTrimmed) {
  auto k = find_key("bearer   tok-1 ", json::object(), "alice");
  EXPECT_EQ(k.key, "tok-1");
  EXPECT_EQ(k.source, "bearer");
}

TEST(HttpKey, TheHeaderWinsThenApiKeyThenMapKey) {
  json fields = {{"api_key", "a"}, {"map_key", "m"}};
  EXPECT_EQ(find_key("Bearer h", fields, "u").key, "h");
  EXPECT_EQ(find_key("", fields, "u").key, "a");
  EXPECT_EQ(find_key("", json{{"map_key", "m"}}, "u").key, "m");
  EXPECT_EQ(find_key("", json{{"api_key", ""}, {"map_key", "m"}}, "u").key, "m");
  EXPECT_EQ(find_key("", json{{"api_key", 12}}, "u").key, "");
}

TEST(HttpKey, Base64DecodesWithAndWithoutPadding) {
  EXPECT_EQ(base64_decode("YWxpY2U6a2V5"), std::optional<std::string>{"alice:key"});
  EXPECT_EQ(base64_decode("YQ=="), std::optional<std::string>{"a"});
  EXPECT_EQ(base64_decode("YQ"), std::optional<std::string>{"a"});
  EXPECT_FALSE(base64_decode("Y"));
  EXPECT_FALSE(base64_decode("a b="));
}

TEST(HttpKey, OnlyMasterKeysUnlessRegularKeysWithGrantsSqlAreAllowed) {
  redis::api_key_record master{"u", "master", true, "r"};
  redis::api_key_record regular{"u", "regular", true, "r"};
  redis::api_key_record regular_no_sql{"u", "regular", false, "r"};
  redis::api_key_record def{"u", "default", true, "r"};
  EXPECT_EQ(judge_key(false, std::nullopt, true), key_verdict::no_key);
  EXPECT_EQ(judge_key(true, std::nullopt, true), key_verdict::unknown_key);
  EXPECT_EQ(judge_key(true, master, false), key_verdict::allowed);
  EXPECT_EQ(judge_key(true, regular, false), key_verdict::not_allowed);
  EXPECT_EQ(judge_key(true, regular, true), key_verdict::allowed);
  EXPECT_EQ(judge_key(true, regular_no_sql, true), key_verdict::not_allowed);
  EXPECT_EQ(judge_key(true, def, true), key_verdict::not_allowed);
}

TEST(HttpMessages, UnknownUserAndPayloadMessagesAreTheSpecs) {
  EXPECT_EQ(unknown_user_message("127"), "Sorry, we can't find user '127'.");
  EXPECT_EQ(payload_message(16385, 16384),
            "Your payload is too large: 16385 bytes. Max size allowed is 16384 bytes.");
}

TEST(HttpParams, WaitAcceptsSecondsWithFractionsAndCapsAtSixty) {
  EXPECT_EQ(parse_wait("1.5").value, std::chrono::milliseconds{1500});
  EXPECT_EQ(parse_wait(".25").value, std::chrono::milliseconds{250});
  EXPECT_EQ(parse_wait("0").value, std::chrono::milliseconds{0});
  EXPECT_EQ(parse_wait("600").value, std::chrono::milliseconds{60000});
  for (auto bad : {"", "-1", "abc", "1e3", "0x10", "nan", "1,5"}) {
    auto w = parse_wait(bad);
    EXPECT_FALSE(w.value) << bad;
    EXPECT_EQ(w.error, std::string{"wait must be a number of seconds from 0 to 60 (fractions "
                                   "allowed), got '"} + bad + "'");
  }
}

TEST(HttpParams, LimitIsAnIntegerFromOneToOneHundred) {
  EXPECT_EQ(parse_limit("1").value, 1);
  EXPECT_EQ(parse_limit("100").value, 100);
  for (auto bad : {"0", "101", "-3", "2.5", "", "x", "1000000000000"})
    EXPECT_EQ(parse_limit(bad).error,
              std::string{"limit must be an integer from 1 to 100, got '"} + bad + "'")
      << bad;
}

TEST(HttpParams, StatusIsACommaListOfKnownStatuses) {
  EXPECT_EQ(parse_statuses("done,failed").value, (std::vector<std::string>{"done", "failed"}));
  EXPECT_EQ(parse_statuses("").value, std::vector<std::string>{});
  EXPECT_EQ(parse_statuses("done,").value, std::vector<std::string>{"done"});
  auto bad = parse_statuses("done,finished");
  EXPECT_FALSE(bad.value);
  EXPECT_NE(bad.error.find("got 'done,finished'"), std::string::npos) << bad.error;
}

TEST(HttpParams, CursorsHaveTheIndexMemberForm) {
  EXPECT_TRUE(valid_cursor("001764350170905:2b0e6a1c-5d2e-4c6e-9a51-0f8c2d1e3b4a"));
  EXPECT_FALSE(valid_cursor(""));
  EXPECT_FALSE(valid_cursor("1764350170905:abc"));
  EXPECT_FALSE(valid_cursor("00176435017090x:abc"));
  EXPECT_FALSE(valid_cursor("001764350170905:"));
  EXPECT_FALSE(valid_cursor("001764350170905:a b"));
}

TEST(HttpParams, IdempotencyKeysAreVisibleAsciiUpTo255) {
  EXPECT_TRUE(valid_idempotency_key("order-42/retry"));
  EXPECT_TRUE(valid_idempotency_key(std::string(255, 'k')));
  EXPECT_FALSE(valid_idempotency_key(""));
  EXPECT_FALSE(valid_idempotency_key(std::string(256, 'k')));
  EXPECT_FALSE(valid_idempotency_key("has space"));
}

TEST(HttpErrors, TheTableMapsEachErrorToItsStatus) {
  auto f = failure_of(make_error(ec::redis_unavailable, "connection refused"));
  EXPECT_EQ(f.status, 503);
  EXPECT_EQ(f.message, "Redis is unavailable: connection refused");
  EXPECT_EQ(failure_of(make_error(ec::queue_full, "Failed to create job. Max number of jobs (2) "
                                                  "queued reached"))
              .status,
            400);
  EXPECT_EQ(failure_of(make_error(ec::invalid_transition, "Cannot set status from done to "
                                                          "cancelled"))
              .message,
            "Cannot set status from done to cancelled");
  EXPECT_EQ(failure_of(make_error(ec::job_not_found, "Job with id x not found")).status, 404);
  EXPECT_EQ(failure_of(make_error(ec::redis_error, "WRONGTYPE")).status, 500);
  EXPECT_EQ(failure_of(make_error(ec::lease_lost, "lease")).status, 500);
  EXPECT_EQ(failure_of(caf::make_error(caf::sec::request_timeout)).status, 504);
}

TEST(HttpErrors, ErrorBodiesAreJsonArraysWithTheCharset) {
  httplib::Response res;
  write_error(res, 403, "permission denied");
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.get_header_value("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(json::parse(res.body), (json{{"error", {"permission denied"}}}));
}

// -- isolation: the elastic pool and the per-user gate ---------------------------

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

#include "src/http/task_pool.hpp"
#include "src/http/user_gate.hpp"

namespace {

using namespace batchq::http;

TEST(HttpElasticPool, StartsAThreadWheneverEveryOneIsBusyUpToTheMax) {
  elastic_pool pool{2, 50, std::chrono::milliseconds{50}};
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  for (int i = 0; i < 40; ++i)
    pool.enqueue([&] {
      ++running;
      std::unique_lock<std::mutex> lock{m};
      cv.wait(lock, [&] { return release; });
    });
  // 40 tasks that block: 40 threads, none waits for another.
  for (int i = 0; i < 1000 && running < 40; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  EXPECT_EQ(running.load(), 40);
  EXPECT_EQ(pool.threads(), 40u);
  {
    std::lock_guard<std::mutex> guard{m};
    release = true;
  }
  cv.notify_all();
  // Threads above the core end after the linger.
  for (int i = 0; i < 1000 && pool.threads() > 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  EXPECT_EQ(pool.threads(), 2u);
  EXPECT_EQ(pool.peak_threads(), 40u);
  pool.shutdown();
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(HttpElasticPool, PastTheMaxTasksWaitAndShutdownRunsWhatIsQueued) {
  elastic_pool pool{1, 2};
  std::atomic<int> done{0};
  std::promise<void> gate;
  auto opened = gate.get_future().share();
  for (int i = 0; i < 2; ++i)
    pool.enqueue([&, opened] {
      opened.wait();
      ++done;
    });
  for (int i = 0; i < 5; ++i)
    pool.enqueue([&] { ++done; });
  EXPECT_EQ(pool.threads(), 2u);
  gate.set_value();
  pool.shutdown();
  EXPECT_EQ(done.load(), 7);
}

TEST(HttpUserGate, CapsRequestsAndWaitsPerUserAndFreesThemOnLeaving) {
  user_gate gate{3, 1};
  auto a1 = gate.enter("a");
  auto a2 = gate.enter("a");
  auto a3 = gate.enter("a");
  ASSERT_TRUE(a1 && a2 && a3);
  EXPECT_FALSE(gate.enter("a")); // a fourth request of a
  EXPECT_TRUE(gate.enter("b"));  // b is not affected
  EXPECT_TRUE(a1->begin_wait());
  EXPECT_FALSE(a2->begin_wait()); // one long-poll per user here
  EXPECT_EQ(gate.load("a"), (std::pair<size_t, size_t>{3, 1}));
  a1.reset();
  EXPECT_EQ(gate.load("a"), (std::pair<size_t, size_t>{2, 0}));
  EXPECT_TRUE(a2->begin_wait());
  EXPECT_TRUE(gate.enter("a"));
  a2.reset();
  a3.reset();
  EXPECT_EQ(gate.load("a"), (std::pair<size_t, size_t>{0, 0}));
}

} // namespace
