// The example configuration documents every key and loads cleanly; flags
// override the file; bad values get a message naming the key.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <caf/settings.hpp>
#include <gtest/gtest.h>

#include "messages/error.hpp"
#include "src/config/settings.hpp"

namespace {

const std::string example = std::string{BATCHQ_SOURCE_DIR} + "/cluster/batchq.example.ini";

caf::expected<batchq::settings> load(std::vector<std::string> args, const std::string& ini_text) {
  batchq::config cfg;
  std::istringstream ini{ini_text};
  if (auto err = cfg.parse(std::move(args), ini))
    return err;
  return cfg.validate();
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST(Config, ExampleFileNamesEveryKey) {
  batchq::config cfg;
  auto parsed = caf::actor_system_config::parse_config_file(example.c_str());
  ASSERT_TRUE(parsed) << cfg.render(parsed.error());
  for (const auto& name : cfg.option_names())
    EXPECT_NE(caf::get_if(&*parsed, name), nullptr) << name << " is missing from " << example;
}

TEST(Config, ExampleFileLoadsToTheDefaults) {
  auto s = load({}, read_file(example));
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  batchq::settings d;
  EXPECT_EQ(s->redis_host, d.redis_host);
  EXPECT_EQ(s->redis_port, 6379);
  EXPECT_EQ(s->redis_db, 5);
  EXPECT_EQ(s->http_bind, "127.0.0.1");
  EXPECT_EQ(s->http_port, 8080);
  EXPECT_EQ(s->api_max_payload, 16384);
  EXPECT_EQ(s->api_user_from_host, R"(^([^.]+)\.)");
  EXPECT_FALSE(s->api_allow_regular_keys);
  EXPECT_EQ(s->batch_max_queued_jobs, 64);
  EXPECT_EQ(s->batch_capacity, 4);
  EXPECT_EQ(s->batch_query_timeout, 43200000);
  EXPECT_EQ(s->batch_finished_jobs_ttl, 7200);
  EXPECT_EQ(s->batch_lease_ttl, 5000);
  EXPECT_EQ(s->batch_rescan_interval, 60);
  EXPECT_EQ(s->batch_sweep_interval, 5);
  EXPECT_EQ(s->batch_on_node_loss, batchq::on_node_loss::fail);
  EXPECT_EQ(s->batch_shutdown_grace, 10);
  EXPECT_EQ(s->batch_turn_slice, 5);
  EXPECT_EQ(s->cluster_node_id, batchq::default_node_id());
  EXPECT_EQ(s->cluster_port, 0);
  EXPECT_EQ(s->cluster_bind, "127.0.0.1");
  EXPECT_EQ(s->cluster_advertise, "127.0.0.1") << "the bind address";
  EXPECT_EQ(s->postgres_port, 5432);
}

TEST(Config, FlagsOverrideTheFile) {
  auto s = load({"--redis.port=7000", "--batch.on-node-loss=requeue", "--cluster.node-id=n1"},
                "[redis]\nport=6500\nhost=\"10.1.2.3\"\n");
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  EXPECT_EQ(s->redis_port, 7000);
  EXPECT_EQ(s->redis_host, "10.1.2.3");
  EXPECT_EQ(s->batch_on_node_loss, batchq::on_node_loss::requeue);
  EXPECT_EQ(s->cluster_node_id, "n1");
}

TEST(Config, BadValuesNameTheKey) {
  auto s = load({"--batch.on-node-loss=explode"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()),
            "batch.on-node-loss: must be \"fail\" or \"requeue\", got \"explode\"");
  s = load({"--redis.port=70000"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()), "redis.port: must be a port number (1-65535), got 70000");
  s = load({"--batch.capacity=0"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()), "batch.capacity: must be greater than 0, got 0");
  s = load({"--batch.turn-slice=-1"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()), "batch.turn-slice: must be 0-60000 ms, got -1");
  s = load({"--batch.turn-slice=0"}, "");
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  EXPECT_EQ(s->batch_turn_slice, 0);
  s = load({"--api.user-from-host=^[^.]+$"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()), "api.user-from-host: needs a capture group for the user");
}

TEST(Config, ClusterKeysOfNodesOnSeveralHosts) {
  unsetenv("BATCHQ_CLUSTER_SECRET");
  auto s = load({"--cluster.bind=127.0.0.3"}, "");
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  EXPECT_EQ(s->cluster_advertise, "127.0.0.3");
  EXPECT_TRUE(s->cluster_secret.empty()) << "loopback needs no secret";

  s = load({"--cluster.bind=10.0.0.7"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()),
            "cluster.secret: is required when cluster.bind (10.0.0.7) is not a loopback "
            "address: the middleman port is unauthenticated (set cluster.secret or "
            "BATCHQ_CLUSTER_SECRET)");
  s = load({"--cluster.bind=0.0.0.0", "--cluster.secret=k"}, "");
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()),
            "cluster.advertise: is required when cluster.bind is 0.0.0.0: other nodes need an "
            "address to reach this one");
  s = load({"--cluster.bind=0.0.0.0", "--cluster.advertise=10.0.0.7", "--cluster.secret=k"}, "");
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  EXPECT_EQ(s->cluster_advertise, "10.0.0.7");
  EXPECT_EQ(s->cluster_secret, "k");

  setenv("BATCHQ_CLUSTER_SECRET", "from-env", 1);
  s = load({"--cluster.bind=10.0.0.7"}, "");
  unsetenv("BATCHQ_CLUSTER_SECRET");
  ASSERT_TRUE(s) << batchq::message_of(s.error());
  EXPECT_EQ(s->cluster_secret, "from-env");
  s = load({"--cluster.secret=from-flag"}, "");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->cluster_secret, "from-flag");
}

TEST(Config, UnknownFlagIsRefused) {
  batchq::config cfg;
  std::istringstream ini{""};
  auto err = cfg.parse(std::vector<std::string>{"--batch.capacty=3"}, ini);
  EXPECT_TRUE(err);
}

TEST(Config, LoadConfigTakesBooleanKeysAsFlagsOrWithTrueAndFalse) {
  auto file = ::testing::TempDir() + "/batchq_bool_test.ini";
  std::ofstream{file} << "[api]\nallow-regular-keys=true\n";
  {
    batchq::config cfg;
    auto s = batchq::load_config(cfg, "", {"--api.allow-regular-keys=true"});
    ASSERT_TRUE(s) << batchq::message_of(s.error());
    EXPECT_TRUE(s->api_allow_regular_keys);
  }
  {
    batchq::config cfg;
    auto s = batchq::load_config(cfg, "", {"--api.allow-regular-keys"});
    ASSERT_TRUE(s) << batchq::message_of(s.error());
    EXPECT_TRUE(s->api_allow_regular_keys);
  }
  { // the flag wins over the file, as for every key
    batchq::config cfg;
    auto s = batchq::load_config(cfg, file, {"--api.allow-regular-keys=false", "--redis.port=7001"});
    ASSERT_TRUE(s) << batchq::message_of(s.error());
    EXPECT_FALSE(s->api_allow_regular_keys);
    EXPECT_EQ(s->redis_port, 7001);
  }
  {
    batchq::config cfg;
    auto s = batchq::load_config(cfg, file, {});
    ASSERT_TRUE(s) << batchq::message_of(s.error());
    EXPECT_TRUE(s->api_allow_regular_keys);
  }
  {
    batchq::config cfg;
    auto s = batchq::load_config(cfg, "", {"--api.allow-regular-keys=maybe"});
    EXPECT_FALSE(s);
  }
}

TEST(Config, LoadConfigNamesAnUnreadableFileAndAStrayWord) {
  batchq::config cfg;
  auto s = batchq::load_config(cfg, "/nonexistent/batchq.ini", {});
  ASSERT_FALSE(s);
  EXPECT_EQ(batchq::message_of(s.error()), "cannot read config file '/nonexistent/batchq.ini'");
  batchq::config cfg2;
  auto t = batchq::load_config(cfg2, "", {"serve"});
  ASSERT_FALSE(t);
  EXPECT_NE(batchq::message_of(t.error()).find("unexpected argument 'serve'"), std::string::npos);
}

TEST(Config, CafSchedulerDefaultsAreBatchqsAndAFlagOverridesThem) {
  {
    batchq::config cfg;
    std::istringstream ini{""};
    ASSERT_FALSE(cfg.parse({}, ini));
    EXPECT_EQ(caf::get_or(cfg, "scheduler.max-threads", size_t{0}),
              batchq::default_scheduler_threads());
    EXPECT_EQ(caf::get_or(cfg, "work-stealing.moderate-poll-attempts", size_t{0}), 1u);
  }
  {
    batchq::config cfg;
    std::istringstream ini{""};
    ASSERT_FALSE(cfg.parse({"--scheduler.max-threads=3"}, ini));
    EXPECT_EQ(caf::get_or(cfg, "scheduler.max-threads", size_t{0}), 3u);
  }
  EXPECT_GE(batchq::default_scheduler_threads(), 1u);
  EXPECT_LE(batchq::default_scheduler_threads(),
            std::max<size_t>(1, std::thread::hardware_concurrency()));
}
