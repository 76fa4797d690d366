// Proof between nodes (SPEC §5 v2): the CAF middleman port is unauthenticated,
// so every message a node sends another carries a node_proof
// (messages/types.hpp) made with the shared cluster.secret, and the receiving
// node's cluster gate (actors/cluster_gate.hpp) checks it before anything
// reaches its canceller. docs/cluster.md "Nodes on several hosts".
//
// The MAC is HMAC-SHA256 (OpenSSL) over one canonical text:
//   "batchq-node-message/1\n" kind "\n" from "\n" to "\n" issued_ms "\n" nonce "\n" body
// so a proof is bound to the kind of message, its body (e.g. the job id), the
// sender, the receiver, the time and a fresh nonce. A receiver refuses a proof
// that is missing, does not verify, names another node, is older (or newer)
// than the window, or whose nonce it has already accepted: a captured message
// cannot be replayed, nor redirected to another node.
//
// Without a secret (a loopback-only cluster, settings.cpp enforces that) the
// mac is empty and only `to`, the window and the nonce are checked.
//
// Thread-safety: sign() is a pure function; a verifier is used by one actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>

#include "messages/types.hpp"

namespace batchq::auth {

/// Why a proof was refused; `ok` when it was accepted. The names are the
/// `reason` labels of batchq_cluster_messages_refused_total.
enum class verdict { ok, missing_proof, bad_proof, stale, replayed, wrong_node };

const char* to_string(verdict v);

/// A proof for a message of `kind` with `body`, from node `from` to node
/// `to`, issued at `now_ms`. An empty `secret` gives an empty mac.
node_proof sign(const std::string& secret, std::string from, std::string to,
                std::string_view kind, std::string_view body, int64_t now_ms);

/// Milliseconds since the epoch (the clock proofs use).
int64_t now_ms();

/// Checks proofs for one node. Remembers the nonces it accepted for twice the
/// window (at most `max_nonces`; past that, the oldest are forgotten, and so
/// are the proofs they belong to refused as stale soon after).
class verifier {
public:
  /// Refuses every proof (it knows no node id) until assigned a real one.
  verifier() = default;
  verifier(std::string secret, std::string self_id,
           std::chrono::milliseconds window = std::chrono::seconds{60},
           size_t max_nonces = 100000);

  verdict check(std::string_view kind, std::string_view body, const node_proof& p,
                int64_t now_ms);

  bool has_secret() const { return !secret_.empty(); }

private:
  std::string secret_;
  std::string self_;
  int64_t window_ms_ = 0;
  size_t max_nonces_ = 0;
  struct seen { int64_t at; std::string nonce; };
  std::deque<seen> order_;
  std::unordered_set<std::string> nonces_;
};

} // namespace batchq::auth
