// FAKE ports::job_environment for deterministic actor tests (no Redis): a
// timeout cap per user (else `default_cap_ms`) and passwords per
// (user, database role); counts lookups. Thread-safety: none (test
// coordinator only).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "messages/error.hpp"
#include "src/ports/ports.hpp"

namespace batchq::test {

class fake_environment : public ports::job_environment {
public:
  int64_t default_cap_ms = 43200000;
  std::map<std::string, int64_t> caps;
  std::map<std::pair<std::string, std::string>, std::string> passwords;
  /// When set, every call fails with it.
  std::optional<caf::error> failure;
  /// The next N password lookups fail with redis_unavailable.
  int unreachable_passwords = 0;
  int cap_lookups = 0;
  int password_lookups = 0;

  caf::expected<int64_t> timeout_cap_ms(const std::string& user) override {
    ++cap_lookups;
    if (failure)
      return *failure;
    auto i = caps.find(user);
    return i == caps.end() ? default_cap_ms : i->second;
  }

  caf::expected<std::optional<std::string>> password(const std::string& user,
                                                     const std::string& dbuser) override {
    ++password_lookups;
    if (failure)
      return *failure;
    if (unreachable_passwords > 0) {
      --unreachable_passwords;
      return make_error(ec::redis_unavailable, "fake Redis is down");
    }
    auto i = passwords.find({user, dbuser});
    if (i == passwords.end())
      return std::optional<std::string>{};
    return std::optional<std::string>{i->second};
  }
};

} // namespace batchq::test
