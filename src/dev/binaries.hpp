// Where `batchq dev` finds the servers it embeds (docs/dev-mode.md):
//   redis-server   $BATCHQ_REDIS_SERVER, else the first `redis-server` on PATH;
//   initdb+postgres $BATCHQ_PG_BINDIR, else /usr/lib/postgresql/<version>/bin
//                  (Debian's layout; the highest version with both programs),
//                  else the first directory on PATH that has both.
// A missing program is an error whose message says how to install it
// (`sudo apt-get install -y redis-server`), so a newcomer can act on it.
//
// Thread safety: stateless functions (they read the environment only in the
// overloads without explicit inputs).
#pragma once

#include <optional>
#include <string>

#include <caf/expected.hpp>

namespace batchq::dev {

/// The Debian package that provides the PostgreSQL server on Debian 12.
inline constexpr const char* postgres_package = "postgresql-15";

struct postgres_binaries {
  std::string bindir;
  std::string initdb;
  std::string postgres;
};

/// Whether `path` is a regular file we may execute.
bool is_executable(const std::string& path);

/// `override_path` (the value of BATCHQ_REDIS_SERVER, nullopt when unset)
/// or `redis-server` on `path_var` (a PATH value). Errors
/// (ec::invalid_config): not found; the message names what was tried and
/// the apt-get line.
caf::expected<std::string> find_redis_server(const std::optional<std::string>& override_path,
                                             const std::string& path_var);

/// `override_dir` (BATCHQ_PG_BINDIR) or the highest version under
/// `debian_root` (normally /usr/lib/postgresql) with bin/initdb and
/// bin/postgres, else a directory of `path_var` with both. Errors as above.
caf::expected<postgres_binaries> find_postgres(const std::optional<std::string>& override_dir,
                                               const std::string& debian_root,
                                               const std::string& path_var);

/// The same, from this process' environment (BATCHQ_REDIS_SERVER,
/// BATCHQ_PG_BINDIR, PATH) and /usr/lib/postgresql.
caf::expected<std::string> find_redis_server();
caf::expected<postgres_binaries> find_postgres();

} // namespace batchq::dev
