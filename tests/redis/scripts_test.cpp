// src/redis/scripts/*.lua as embedded at build time, and EVALSHA/NOSCRIPT.
#include "src/redis/script.hpp"

#include <chrono>

#include <gtest/gtest.h>

#include "src/redis/embedded_scripts.hpp"
#include "src/redis/turns.hpp"
#include "tests/redis/redis_test_support.hpp"

using namespace std::chrono_literals;
using batchq::ec;
using batchq::is;
using batchq::message_of;
using namespace batchq::redis;
using batchq::redis::test::must;
using batchq::redis::test::value_or;
using batchq::redis::test::test_endpoint;

TEST(RedisScripts, EveryOperationIsEmbeddedWithAHeaderNamingKeysAndArgv) {
  std::vector<std::string> expected{"job_cancel_pending", "job_create", "job_list",
                                    "results_append",     "results_begin", "turn",
                                    "turns_renew",        "user_env",   "wip_orphans"};
  std::vector<std::string> names;
  for (const script* s : scripts::all()) {
    names.emplace_back(s->name);
    std::string text{s->text};
    EXPECT_EQ(text.rfind("-- " + std::string{s->name} + ":", 0), 0u) << s->name;
    EXPECT_NE(text.find("-- KEYS"), std::string::npos) << s->name;
    EXPECT_NE(text.find("ARGV[1]"), std::string::npos) << s->name;
    EXPECT_NE(text.find("Returns"), std::string::npos) << s->name;
  }
  EXPECT_EQ(names, expected);
  ASSERT_NE(find_script("job_create"), nullptr);
  EXPECT_EQ(find_script("job_create"), &scripts::job_create);
  EXPECT_EQ(find_script("nope"), nullptr);
}

TEST(RedisScripts, EmbeddedSha1EqualsTheDigestRedisComputes) {
  client c{test_endpoint()};
  for (const script* s : scripts::all()) {
    auto r = must(c, {"SCRIPT", "LOAD", std::string{s->text}});
    EXPECT_EQ(r.str, s->sha1) << s->name;
  }
}

TEST(RedisScripts, EvalshaRecoversTransparentlyAfterScriptFlush) {
  batchq::redis::test::scoped_user u{"rt_flush"};
  client& c = u.c;
  auto token = random_token();
  must(c, {"SET", keys::lock_user(u.name), token, "PX", "5000"});
  const std::vector<held_turn> held{{u.name, token, "", ""}};
  // Flushing the script cache affects every connection; other test processes
  // recover the same way. One of them may also re-load the scripts (every new
  // connection does) between our FLUSH and our call: then try again.
  bool recovered = false;
  for (int attempt = 0; attempt < 50 && !recovered; ++attempt) {
    must(c, {"SCRIPT", "FLUSH"});
    auto fallbacks = c.noscript_fallbacks();
    auto before = c.round_trips();
    auto renewed = renew_turns(c, held, 5000ms);
    ASSERT_TRUE(renewed) << message_of(renewed.error());
    EXPECT_EQ(*renewed, std::vector<bool>{true});
    if (c.noscript_fallbacks() == fallbacks + 1) {
      EXPECT_EQ(c.round_trips() - before, 2u); // EVALSHA -> NOSCRIPT, then EVAL
      recovered = true;
    }
  }
  EXPECT_TRUE(recovered) << "never saw NOSCRIPT after SCRIPT FLUSH";
  // EVAL cached it again: the next call is one EVALSHA.
  auto before = c.round_trips();
  auto fallbacks = c.noscript_fallbacks();
  ASSERT_TRUE(renew_turns(c, held, 5000ms));
  if (c.noscript_fallbacks() == fallbacks) { // unless another process flushed meanwhile
    EXPECT_EQ(c.round_trips() - before, 1u);
  }
}

TEST(RedisScripts, AScriptErrorIsARedisErrorWithRedisText) {
  client c{test_endpoint()};
  // job_create refuses an odd field list before touching anything.
  auto r = c.eval(scripts::job_create, {"k1", "k2", "k3"}, {"id", "user", "0", "chan", "f"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::redis_error));
  EXPECT_EQ(message_of(r.error()).rfind("BAD_ARGS", 0), 0u) << message_of(r.error());
}
