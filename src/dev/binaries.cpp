#include "src/dev/binaries.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "messages/error.hpp"

namespace batchq::dev {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    return std::nullopt;
  return std::string{v};
}

std::vector<std::string> split_path(const std::string& path_var) {
  std::vector<std::string> dirs;
  size_t start = 0;
  for (;;) {
    auto colon = path_var.find(':', start);
    auto dir = path_var.substr(start, colon == std::string::npos ? colon : colon - start);
    if (!dir.empty()) // an empty entry means "." in POSIX; never search the cwd here
      dirs.push_back(dir);
    if (colon == std::string::npos)
      return dirs;
    start = colon + 1;
  }
}

/// "sudo " unless we are root (then the hint is runnable as printed).
std::string sudo() {
  return ::geteuid() == 0 ? "" : "sudo ";
}

/// Orders "9.6" < "12" < "15" < "16": numeric major, then minor.
bool version_less(const std::string& a, const std::string& b) {
  auto parse = [](const std::string& v) {
    std::vector<long> parts;
    size_t i = 0;
    while (i < v.size()) {
      size_t j = i;
      while (j < v.size() && v[j] >= '0' && v[j] <= '9')
        ++j;
      parts.push_back(j > i ? std::strtol(v.substr(i, j - i).c_str(), nullptr, 10) : -1);
      i = j + 1;
    }
    return parts;
  };
  return parse(a) < parse(b);
}

std::optional<postgres_binaries> pg_in(const std::string& dir) {
  postgres_binaries b{dir, dir + "/initdb", dir + "/postgres"};
  if (is_executable(b.initdb) && is_executable(b.postgres))
    return b;
  return std::nullopt;
}

} // namespace

bool is_executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

caf::expected<std::string> find_redis_server(const std::optional<std::string>& override_path,
                                             const std::string& path_var) {
  auto hint = "install it with: " + sudo() + "apt-get install -y redis-server";
  if (override_path) {
    if (is_executable(*override_path))
      return *override_path;
    return make_error(ec::invalid_config, "redis-server was not found: BATCHQ_REDIS_SERVER="
                                            + *override_path + " is not an executable file; "
                                            + hint + " (or fix BATCHQ_REDIS_SERVER)");
  }
  for (const auto& dir : split_path(path_var)) {
    auto candidate = dir + "/redis-server";
    if (is_executable(candidate))
      return candidate;
  }
  return make_error(ec::invalid_config, "redis-server was not found on PATH; " + hint
                                          + " (or set BATCHQ_REDIS_SERVER to its path)");
}

caf::expected<postgres_binaries> find_postgres(const std::optional<std::string>& override_dir,
                                               const std::string& debian_root,
                                               const std::string& path_var) {
  auto hint = std::string{"install them with: "} + sudo() + "apt-get install -y "
              + postgres_package;
  if (override_dir) {
    if (auto b = pg_in(*override_dir))
      return *b;
    return make_error(ec::invalid_config,
                      "PostgreSQL server binaries (initdb, postgres) were not found: "
                      "BATCHQ_PG_BINDIR="
                        + *override_dir + " does not hold both as executable files; " + hint
                        + " (or fix BATCHQ_PG_BINDIR)");
  }
  std::vector<std::string> versions;
  std::error_code ec_ignored;
  for (fs::directory_iterator it{debian_root, ec_ignored}, end; !ec_ignored && it != end;
       it.increment(ec_ignored))
    versions.push_back(it->path().filename().string());
  std::sort(versions.begin(), versions.end(), version_less);
  for (auto v = versions.rbegin(); v != versions.rend(); ++v)
    if (auto b = pg_in(debian_root + "/" + *v + "/bin"))
      return *b;
  for (const auto& dir : split_path(path_var))
    if (auto b = pg_in(dir))
      return *b;
  return make_error(ec::invalid_config,
                    "PostgreSQL server binaries (initdb, postgres) were not found in "
                      + debian_root + "/*/bin or on PATH; " + hint
                      + " (or set BATCHQ_PG_BINDIR to the directory that holds them)");
}

caf::expected<std::string> find_redis_server() {
  return find_redis_server(env("BATCHQ_REDIS_SERVER"), env("PATH").value_or(""));
}

caf::expected<postgres_binaries> find_postgres() {
  return find_postgres(env("BATCHQ_PG_BINDIR"), "/usr/lib/postgresql", env("PATH").value_or(""));
}

} // namespace batchq::dev
