#include "src/redis/subscription.hpp"

#include <cerrno>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

namespace batchq::redis {

namespace {

std::string where(const endpoint& ep) {
  return "Redis at " + ep.host + ":" + std::to_string(ep.port);
}

/// Frees a hiredis reply on scope exit.
struct reply_ptr {
  void* p = nullptr;
  ~reply_ptr() {
    if (p != nullptr)
      freeReplyObject(p);
  }
};

} // namespace

subscription::subscription(redisContext* ctx) : ctx_(ctx), fd_(ctx->fd) {
  // nop
}

subscription::~subscription() {
  redisFree(ctx_);
}

caf::expected<std::unique_ptr<subscription>>
subscription::open(const endpoint& ep, const std::vector<std::string>& channels,
                   const std::string& client_name) {
  if (channels.empty())
    return make_error(ec::redis_error, "SUBSCRIBE needs at least one channel");
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ep.connect_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ep.connect_timeout.count() % 1000) * 1000);
  redisContext* c = redisConnectWithTimeout(ep.host.c_str(), ep.port, tv);
  if (c == nullptr)
    return make_error(ec::redis_unavailable, where(ep) + ": cannot allocate a hiredis context");
  std::unique_ptr<subscription> sub{new subscription(c)};
  if (c->err != 0)
    return make_error(ec::redis_unavailable, where(ep) + " is unavailable: " + c->errstr);
  std::vector<const char*> argv{"SUBSCRIBE"};
  std::vector<size_t> lens{9};
  for (const auto& ch : channels) {
    argv.push_back(ch.data());
    lens.push_back(ch.size());
  }
  sigpipe_guard guard;
  size_t replies = channels.size();
  if (!client_name.empty()) {
    const char* name_argv[] = {"CLIENT", "SETNAME", client_name.c_str()};
    size_t name_lens[] = {6, 7, client_name.size()};
    redisAppendCommandArgv(c, 3, name_argv, name_lens);
    ++replies; // +OK
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  // (+OK of CLIENT SETNAME, then) one confirmation per channel:
  // ["subscribe", channel, count].
  for (size_t i = 0; i < replies; ++i) {
    reply_ptr r;
    if (redisGetReply(c, &r.p) != REDIS_OK || r.p == nullptr)
      return make_error(ec::redis_unavailable, where(ep) + " is unavailable: " + c->errstr);
    auto* rep = static_cast<redisReply*>(r.p);
    if (rep->type == REDIS_REPLY_ERROR)
      return make_error(ec::redis_error, std::string(rep->str, rep->len));
  }
  return sub;
}

void subscription::interrupt() noexcept {
  interrupted_ = true;
  ::shutdown(fd_.load(), SHUT_RDWR);
}

caf::expected<std::optional<pubsub_message>> subscription::next(std::chrono::milliseconds timeout) {
  using namespace std::chrono;
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    if (interrupted_)
      return make_error(ec::redis_unavailable, "subscription interrupted");
    reply_ptr r;
    // A reply may already sit in hiredis' buffer (several messages per read).
    if (redisGetReplyFromReader(ctx_, &r.p) != REDIS_OK)
      return make_error(ec::redis_unavailable, std::string{"pub/sub read failed: "} + ctx_->errstr);
    if (r.p == nullptr) {
      int wait_ms = -1;
      if (timeout.count() >= 0) {
        auto left = duration_cast<milliseconds>(deadline - steady_clock::now()).count();
        wait_ms = left > 0 ? static_cast<int>(left) : 0;
      }
      pollfd pfd{fd_.load(), POLLIN, 0};
      int n = ::poll(&pfd, 1, wait_ms);
      if (n == 0)
        return std::optional<pubsub_message>{};
      if (n < 0 && errno == EINTR)
        continue;
      if (interrupted_)
        return make_error(ec::redis_unavailable, "subscription interrupted");
      if (redisGetReply(ctx_, &r.p) != REDIS_OK || r.p == nullptr)
        return make_error(ec::redis_unavailable,
                          std::string{"pub/sub connection lost: "} + ctx_->errstr);
    }
    auto* rep = static_cast<redisReply*>(r.p);
    // ["message", channel, payload]; confirmations and pongs are skipped.
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3
        && rep->element[0]->type == REDIS_REPLY_STRING
        && std::string(rep->element[0]->str, rep->element[0]->len) == "message") {
      pubsub_message m;
      m.channel.assign(rep->element[1]->str, rep->element[1]->len);
      m.payload.assign(rep->element[2]->str, rep->element[2]->len);
      return std::optional<pubsub_message>{std::move(m)};
    }
  }
}

} // namespace batchq::redis
