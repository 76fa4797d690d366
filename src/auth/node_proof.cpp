#include "src/auth/node_proof.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace batchq::auth {

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 0x0f];
  }
  return out;
}

std::string canonical(std::string_view kind, const node_proof& p, std::string_view body) {
  std::string text = "batchq-node-message/1\n";
  text.append(kind);
  text += '\n';
  text += p.from;
  text += '\n';
  text += p.to;
  text += '\n';
  text += std::to_string(p.issued_ms);
  text += '\n';
  text += p.nonce;
  text += '\n';
  text.append(body);
  return text;
}

std::string mac_of(const std::string& secret, const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data(), &len);
  return hex(out.data(), len);
}

std::string fresh_nonce() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    // OpenSSL's generator failed (it practically never does): a time-based
    // nonce still differs per message; the MAC is what proves the sender.
    auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    for (size_t i = 0; i < b.size(); ++i)
      b[i] = static_cast<unsigned char>((t >> (8 * (i % 8))) ^ i);
  }
  return hex(b.data(), b.size());
}

} // namespace

const char* to_string(verdict v) {
  switch (v) {
    case verdict::ok: return "ok";
    case verdict::missing_proof: return "missing_proof";
    case verdict::bad_proof: return "bad_proof";
    case verdict::stale: return "stale";
    case verdict::replayed: return "replayed";
    case verdict::wrong_node: return "wrong_node";
  }
  return "bad_proof";
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

node_proof sign(const std::string& secret, std::string from, std::string to,
                std::string_view kind, std::string_view body, int64_t now) {
  node_proof p;
  p.from = std::move(from);
  p.to = std::move(to);
  p.issued_ms = now;
  p.nonce = fresh_nonce();
  if (!secret.empty())
    p.mac = mac_of(secret, canonical(kind, p, body));
  return p;
}

verifier::verifier(std::string secret, std::string self_id, std::chrono::milliseconds window,
                   size_t max_nonces)
  : secret_(std::move(secret)),
    self_(std::move(self_id)),
    window_ms_(window.count()),
    max_nonces_(max_nonces) {
}

verdict verifier::check(std::string_view kind, std::string_view body, const node_proof& p,
                        int64_t now) {
  if (!secret_.empty()) {
    if (p.mac.empty())
      return verdict::missing_proof;
    auto want = mac_of(secret_, canonical(kind, p, body));
    if (want.size() != p.mac.size() || CRYPTO_memcmp(want.data(), p.mac.data(), want.size()) != 0)
      return verdict::bad_proof;
  }
  if (p.to != self_)
    return verdict::wrong_node;
  if (p.issued_ms < now - window_ms_ || p.issued_ms > now + window_ms_)
    return verdict::stale;
  if (p.nonce.empty())
    return verdict::missing_proof;
  // Forget nonces past twice the window: their proofs are stale by now.
  while (!order_.empty()
         && (order_.front().at < now - 2 * window_ms_ || order_.size() >= max_nonces_)) {
    nonces_.erase(order_.front().nonce);
    order_.pop_front();
  }
  if (!nonces_.insert(p.nonce).second)
    return verdict::replayed;
  order_.push_back(seen{now, p.nonce});
  return verdict::ok;
}

} // namespace batchq::auth
