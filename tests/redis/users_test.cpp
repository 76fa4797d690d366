// src/redis/users: the CARTO metadata records (rails:users, api_keys) that
// `batchq user add|remove` and `batchq dev` write, against the real Redis.
#include "src/redis/users.hpp"

#include <gtest/gtest.h>

#include "src/redis/keys.hpp"
#include "tests/redis/redis_test_support.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq::redis;
using batchq::ec;
using batchq::is;
using batchq::redis::test::must;

namespace {

endpoint metadata_endpoint() {
  endpoint ep;
  ep.port = static_cast<uint16_t>(batchq::test::redis_port());
  ep.db = metadata_db;
  return ep;
}

user_account account(const std::string& name) {
  user_account a;
  a.user = name;
  a.database_host = "db.example";
  a.database_name = "cartodb_user_db";
  a.database_port = 6432;
  a.database_role = "role_" + name;
  a.database_password = "s3cret";
  return a;
}

struct users_fixture : ::testing::Test {
  client c{metadata_endpoint()};
  std::string name = batchq::test::unique_name("users");

  void TearDown() override {
    (void) remove_user(c, name);
  }

  std::string field(const std::string& key, const std::string& f) {
    return must(c, {"HGET", key, f}).str;
  }
};

} // namespace

TEST_F(users_fixture, add_user_writes_the_carto_records_with_a_master_key) {
  auto key = add_user(c, account(name));
  ASSERT_TRUE(key) << batchq::message_of(key.error());
  EXPECT_EQ(key->size(), 36u);
  auto rails = keys::rails_user(name);
  EXPECT_FALSE(field(rails, "id").empty());
  EXPECT_EQ(field(rails, "database_host"), "db.example");
  EXPECT_EQ(field(rails, "database_name"), "cartodb_user_db");
  EXPECT_EQ(field(rails, "database_port"), "6432");
  EXPECT_EQ(field(rails, "map_key"), *key);
  auto api = keys::api_key(name, *key);
  EXPECT_EQ(field(api, "user"), name);
  EXPECT_EQ(field(api, "type"), "master");
  EXPECT_EQ(field(api, "grants_sql"), "true");
  EXPECT_EQ(field(api, "database_role"), "role_" + name);
  EXPECT_EQ(field(api, "database_password"), "s3cret");
}

TEST_F(users_fixture, read_user_and_read_api_key_see_what_add_user_wrote_but_no_password) {
  auto key = add_user(c, account(name), std::string{"fixed-demo-key"});
  ASSERT_TRUE(key);
  EXPECT_EQ(*key, "fixed-demo-key");
  auto u = read_user(c, name);
  ASSERT_TRUE(u && *u);
  EXPECT_EQ((*u)->database_host, "db.example");
  EXPECT_EQ((*u)->database_name, "cartodb_user_db");
  EXPECT_EQ((*u)->database_port, std::optional<uint16_t>{6432});
  EXPECT_TRUE((*u)->database_password.empty());
  auto k = read_api_key(c, name, "fixed-demo-key");
  ASSERT_TRUE(k && *k);
  EXPECT_EQ((*k)->type, "master");
  EXPECT_TRUE((*k)->grants_sql);
  EXPECT_EQ((*k)->database_role, "role_" + name);
  auto wrong = read_api_key(c, name, "not-a-key");
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(*wrong);
  auto nobody = read_user(c, name + "_nobody");
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(*nobody);
}

TEST_F(users_fixture, adding_a_user_again_replaces_its_master_key) {
  auto first = add_user(c, account(name));
  auto second = add_user(c, account(name));
  ASSERT_TRUE(first && second);
  EXPECT_NE(*first, *second);
  EXPECT_EQ(must(c, {"EXISTS", keys::api_key(name, *first)}).integer, 0);
  EXPECT_EQ(must(c, {"EXISTS", keys::api_key(name, *second)}).integer, 1);
  EXPECT_EQ(field(keys::rails_user(name), "map_key"), *second);
}

TEST_F(users_fixture, list_users_finds_the_user_and_remove_user_deletes_every_record) {
  auto key = add_user(c, account(name));
  ASSERT_TRUE(key);
  must(c, {"HSET", keys::api_key(name, "extra-regular"), "type", "regular"});
  auto names = list_users(c);
  ASSERT_TRUE(names);
  EXPECT_NE(std::find(names->begin(), names->end(), name), names->end());
  auto removed = remove_user(c, name);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_EQ(must(c, {"EXISTS", keys::rails_user(name), keys::api_key(name, *key),
                     keys::api_key(name, "extra-regular")})
              .integer,
            0);
  auto again = remove_user(c, name);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_F(users_fixture, bad_account_values_are_refused_with_a_message_and_nothing_written) {
  auto a = account(name + ":x");
  auto r = add_user(c, a);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::invalid_config));
  EXPECT_NE(batchq::message_of(r.error()).find("contains ':'"), std::string::npos);
  auto b = account(name);
  b.database_role.clear();
  auto r2 = add_user(c, b);
  ASSERT_FALSE(r2);
  EXPECT_EQ(batchq::message_of(r2.error()), "the database role is empty");
  EXPECT_EQ(must(c, {"EXISTS", keys::rails_user(name)}).integer, 0);
}
