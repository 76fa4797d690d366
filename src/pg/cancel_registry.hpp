// The cancel tokens of the jobs running on this node, by job id (SPEC §2
// canceller, §3.5, §7). Runners arm a token before their first statement and
// disarm it when the job ends; the canceller fires tokens. A cancel that
// arrives before the runner armed its token leaves a tombstone, so the token is
// born fired and the first statement is never sent: a cancel always wins.
//
// Thread-safe: runners (detached threads) and the canceller call it
// concurrently; every member takes one mutex and never blocks otherwise.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "messages/types.hpp"
#include "src/pg/cancel_token.hpp"

namespace batchq::pg {

class cancel_registry {
public:
  using clock = std::chrono::steady_clock;

  /// How long a tombstone (a cancel for a job not armed here) is kept.
  explicit cancel_registry(std::chrono::seconds tombstone_ttl = std::chrono::seconds{60});

  /// The token of `job_id`, armed for `user`. Already fired (with the
  /// tombstone's reason) when a cancel came first.
  std::shared_ptr<cancel_token> arm(const std::string& job_id, const std::string& user);

  /// Forgets `job_id` (the job ended on this node).
  void disarm(const std::string& job_id);

  /// Fires the token of `job_id` with `why`. Returns true when the job is armed
  /// here; else leaves a tombstone (when `leave_tombstone`) and returns false.
  bool cancel(const std::string& job_id, stop_reason why, bool leave_tombstone = true);

  /// Fires every armed token of `user`; returns how many.
  int cancel_user(const std::string& user, stop_reason why);

  /// Why the token of `job_id` fired (none when it did not, or is unknown).
  stop_reason reason(const std::string& job_id) const;

  /// Whether `job_id` is armed here.
  bool armed(const std::string& job_id) const;

private:
  struct entry {
    std::string user;
    std::shared_ptr<cancel_token> token;
    stop_reason why = stop_reason::none;
    bool tombstone = false;
    clock::time_point since;
  };
  void purge_tombstones(clock::time_point now); // REQUIRES: mtx_ held

  std::chrono::seconds tombstone_ttl_;
  mutable std::mutex mtx_;
  std::map<std::string, entry> jobs_;
};

} // namespace batchq::pg
