// The cancel tokens of the jobs running on this node, by job id (SPEC §2
// canceller, §3.5, §5, §7), and the local deadlines of the leases they run
// under. Runners arm a token before their first statement and disarm it when
// the job ends; the canceller fires tokens; the scheduler keeps each lease's
// deadline.
//
//  - Every run gets a FRESH token: a token fired for an earlier run of the
//    same job (a drain, a lost lease) is never handed to a later run, and a
//    late disarm of an old run never removes a newer one.
//  - A user's cancel that arrives before the runner armed its token leaves a
//    tombstone, so the next run's token is born fired and the first statement
//    is never sent: a cancel always wins. Only user cancels leave tombstones;
//    a tombstone is consumed by the run it cancels.
//  - Tokens are bound to the deadline of the lease their turn runs under
//    (lease()): past it no statement is sent, even before the scheduler's
//    fence fires them.
//
// Thread-safe: runners (detached threads), the canceller and the scheduler
// call it concurrently; every member takes one mutex and never blocks
// otherwise.
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

  /// A fresh token for a run of `job_id` in `user`'s turn `lease_token`,
  /// bound to that lease's deadline when one is registered. Already fired
  /// (reason user_cancel) when a user's cancel came first.
  std::shared_ptr<cancel_token> arm(const std::string& job_id, const std::string& user,
                                    const std::string& lease_token = {});

  /// Forgets the run of `job_id` that holds `token` (the job ended on this
  /// node); a newer run of the same job is left alone.
  void disarm(const std::string& job_id, const cancel_token* token);

  /// Fires the token of `job_id` with `why`. Returns true when the job is armed
  /// here; else leaves a tombstone (when `leave_tombstone` and `why` is
  /// user_cancel) and returns false.
  bool cancel(const std::string& job_id, stop_reason why, bool leave_tombstone = true);

  /// Fires every armed token of `user` run under `lease_token` ("" = under any
  /// lease); returns how many.
  int cancel_user(const std::string& user, const std::string& lease_token, stop_reason why);

  /// Why `token` (of a run of `job_id`) fired: none when it did not, or when
  /// it is not that job's current run.
  stop_reason reason(const std::string& job_id, const cancel_token* token) const;

  /// Whether `job_id` is armed here.
  bool armed(const std::string& job_id) const;

  /// The deadline of lease `lease_token` (created, with no deadline, on first
  /// use); tokens armed under that lease from now on are bound to it.
  std::shared_ptr<lease_deadline> lease(const std::string& lease_token);

  /// Forgets lease `lease_token` (its turn ended). Tokens bound to it keep it.
  void forget_lease(const std::string& lease_token);

private:
  struct entry {
    std::string user;
    std::string lease_token;
    std::shared_ptr<cancel_token> token;
    stop_reason why = stop_reason::none;
    bool tombstone = false;
    clock::time_point since;
  };
  void purge_tombstones(clock::time_point now); // REQUIRES: mtx_ held

  std::chrono::seconds tombstone_ttl_;
  mutable std::mutex mtx_;
  std::map<std::string, entry> jobs_;
  std::map<std::string, std::shared_ptr<lease_deadline>> leases_;
};

} // namespace batchq::pg
