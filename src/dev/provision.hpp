// The demo account of `batchq dev` (docs/dev-mode.md): a PostgreSQL role and
// database in the embedded cluster, and a batchq user whose master API key
// runs jobs there.
//
//   CREATE ROLE batchq_demo LOGIN PASSWORD '<random>'
//   CREATE DATABASE batchq_demo OWNER batchq_demo
//   rails:users:demo + api_keys:demo:<key>   (redis::add_user, metadata DB 5)
//
// The role's password is random and lives only in the api_keys record (as
// CARTO keeps it) and in this process; jobs connect over TCP with it
// (scram-sha-256), as they would to any production database.
//
// Thread safety: stateless functions; one blocking connection each.
#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "src/redis/client.hpp"

namespace batchq::dev {

struct demo_account {
  std::string user = "demo";
  std::string database = "batchq_demo";
  std::string role = "batchq_demo";
  /// The role's password (random, set by create_demo_database's caller).
  std::string password;
};

/// Where the embedded cluster's superuser connects: the socket directory as
/// libpq `host`, trust authentication.
struct superuser_target {
  std::string socket_dir;
  uint16_t port = 0;
  std::string user = "postgres";
};

/// Creates the role (LOGIN, the password) and the database it owns.
/// Identifiers and the password are quoted by libpq (PQescapeIdentifier,
/// PQescapeLiteral). Errors: ec::pg_connect_failed (cannot connect),
/// ec::pg_statement_failed (PostgreSQL's message).
caf::error create_demo_database(const superuser_target& pg, const demo_account& account);

/// Writes the batchq user `account.user` (database on 127.0.0.1:`pg_port`)
/// with a new random master key into `metadata` (DB 5) and returns the key.
/// An existing user of that name is replaced. Errors: those of
/// redis::add_user.
caf::expected<std::string> add_demo_user(redis::client& metadata, const demo_account& account,
                                         uint16_t pg_port);

} // namespace batchq::dev
