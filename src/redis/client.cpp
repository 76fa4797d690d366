#include "src/redis/client.hpp"

#include <algorithm>
#include <utility>

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "src/metrics/metrics.hpp"
#include "src/redis/embedded_scripts.hpp"

namespace batchq::redis {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
      break;
    default: // REDIS_REPLY_NIL
      break;
  }
  return out;
}

/// Frees a hiredis reply on scope exit.
struct reply_ptr {
  void* p;
  ~reply_ptr() {
    if (p != nullptr)
      freeReplyObject(p);
  }
};

void append(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

} // namespace

sigpipe_guard::sigpipe_guard() {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  pending_before_ = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask_);
}

sigpipe_guard::~sigpipe_guard() {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  if (!pending_before_) {
    // Consume a SIGPIPE raised by our own write before unblocking.
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{0, 0};
      sigtimedwait(&pipe_set, nullptr, &zero);
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

std::string reply::to_string() const {
  switch (type) {
    case kind::nil: return "nil";
    case kind::integer: return std::to_string(integer);
    case kind::string: return '"' + str + '"';
    case kind::status: return "+" + str;
    case kind::error: return "-" + str;
    case kind::array: {
      std::string s = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0)
          s += ", ";
        s += elements[i].to_string();
      }
      return s + "]";
    }
  }
  return "?";
}

client::client(endpoint ep, backoff_policy backoff)
  : ep_(std::move(ep)), policy_(backoff), backoff_(backoff.initial) {
  // nop: connects lazily
}

client::~client() {
  disconnect();
}

client::client(client&& other) noexcept
  : ep_(std::move(other.ep_)),
    policy_(other.policy_),
    ctx_(std::exchange(other.ctx_, nullptr)),
    backoff_(other.backoff_),
    retry_at_(other.retry_at_),
    last_error_(std::move(other.last_error_)),
    round_trips_(other.round_trips_),
    connects_(other.connects_),
    noscript_fallbacks_(other.noscript_fallbacks_) {
  // nop
}

client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    disconnect();
    ep_ = std::move(other.ep_);
    policy_ = other.policy_;
    ctx_ = std::exchange(other.ctx_, nullptr);
    backoff_ = other.backoff_;
    retry_at_ = other.retry_at_;
    last_error_ = std::move(other.last_error_);
    round_trips_ = other.round_trips_;
    connects_ = other.connects_;
    noscript_fallbacks_ = other.noscript_fallbacks_;
  }
  return *this;
}

void client::disconnect() noexcept {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

std::chrono::milliseconds client::retry_in() const {
  auto now = std::chrono::steady_clock::now();
  if (ctx_ != nullptr || now >= retry_at_)
    return std::chrono::milliseconds{0};
  return std::chrono::ceil<std::chrono::milliseconds>(retry_at_ - now);
}

std::string client::describe() const {
  return "Redis at " + ep_.host + ":" + std::to_string(ep_.port);
}

caf::error client::fail_io(const std::string& what) {
  disconnect();
  last_error_ = what;
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, policy_.max);
  return make_error(ec::redis_unavailable, describe() + " is unavailable: " + what);
}

caf::error client::ensure_connected() {
  if (ctx_ != nullptr)
    return {};
  auto now = std::chrono::steady_clock::now();
  if (now < retry_at_) {
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(retry_at_ - now);
    return make_error(ec::redis_unavailable, describe() + " is unavailable: " + last_error_
                                               + " (next reconnect in "
                                               + std::to_string(wait.count()) + " ms)");
  }
  redisContext* c = redisConnectWithTimeout(ep_.host.c_str(), ep_.port,
                                            to_timeval(ep_.connect_timeout));
  if (c == nullptr)
    return fail_io("cannot allocate a hiredis context");
  if (c->err != 0) {
    std::string what = c->errstr;
    redisFree(c);
    return fail_io(what);
  }
  if (ep_.command_timeout.count() > 0)
    redisSetTimeout(c, to_timeval(ep_.command_timeout));
  redisEnableKeepAlive(c);
  ctx_ = c;
  sigpipe_guard guard;
  // Handshake, one round trip: SELECT db, then SCRIPT LOAD of every embedded
  // script so that EVALSHA hits even right after a Redis restart.
  std::vector<std::vector<std::string>> handshake;
  handshake.push_back({"SELECT", std::to_string(ep_.db)});
  for (const script* s : scripts::all())
    handshake.push_back({"SCRIPT", "LOAD", std::string{s->text}});
  for (const auto& cmd : handshake)
    append(ctx_, cmd);
  for (size_t i = 0; i < handshake.size(); ++i) {
    reply_ptr r{nullptr};
    if (redisGetReply(ctx_, &r.p) != REDIS_OK || r.p == nullptr)
      return fail_io(ctx_->errstr);
    auto rep = convert(static_cast<redisReply*>(r.p));
    if (rep.is_error()) {
      // E.g. "ERR DB index is out of range": a configuration error that a
      // reconnect will not fix; still keep the backoff so we do not spin.
      std::string what = (i == 0 ? "SELECT " + std::to_string(ep_.db) : "SCRIPT LOAD") + ": "
                         + rep.str;
      auto err = fail_io(what);
      // LOADING (the AOF is being read after a restart) and the like: retry.
      if (is(error_reply(rep.str), ec::redis_unavailable))
        return err;
      return make_error(ec::redis_error, describe() + ": " + what);
    }
  }
  backoff_ = policy_.initial;
  last_error_.clear();
  ++connects_;
  return {};
}

caf::error client::error_reply(std::string text) const {
  // Redis answers these while it cannot serve yet (loading its dataset from
  // the AOF after a restart, a script running too long, a replica without
  // its master): the command did not run and a later retry may succeed.
  for (const char* busy : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"})
    if (text.rfind(busy, 0) == 0)
      return make_error(ec::redis_unavailable, describe() + " is not ready: " + text);
  return make_error(ec::redis_error, std::move(text));
}

caf::expected<reply> client::exec(const std::vector<std::string>& argv) {
  if (argv.empty())
    return make_error(ec::redis_error, "empty Redis command");
  if (auto err = ensure_connected())
    return err;
  sigpipe_guard guard;
  ++round_trips_;
  metrics::global().redis_round_trips.fetch_add(1, std::memory_order_relaxed);
  append(ctx_, argv);
  reply_ptr r{nullptr};
  if (redisGetReply(ctx_, &r.p) != REDIS_OK || r.p == nullptr)
    return fail_io(ctx_->errstr[0] != '\0' ? ctx_->errstr : "no reply");
  return convert(static_cast<redisReply*>(r.p));
}

caf::expected<reply> client::command(const std::vector<std::string>& argv) {
  auto r = exec(argv);
  if (r && r->is_error())
    return error_reply(std::move(r->str));
  return r;
}

caf::expected<std::vector<reply>>
client::pipeline(const std::vector<std::vector<std::string>>& commands) {
  std::vector<reply> out;
  if (commands.empty())
    return out;
  for (const auto& cmd : commands)
    if (cmd.empty())
      return make_error(ec::redis_error, "empty Redis command in pipeline");
  if (auto err = ensure_connected())
    return err;
  sigpipe_guard guard;
  ++round_trips_;
  metrics::global().redis_round_trips.fetch_add(1, std::memory_order_relaxed);
  for (const auto& cmd : commands)
    append(ctx_, cmd);
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    reply_ptr r{nullptr};
    if (redisGetReply(ctx_, &r.p) != REDIS_OK || r.p == nullptr)
      return fail_io(ctx_->errstr[0] != '\0' ? ctx_->errstr : "no reply");
    out.push_back(convert(static_cast<redisReply*>(r.p)));
  }
  return out;
}

std::vector<std::string> client::evalsha_command(const script& s,
                                                 const std::vector<std::string>& keys,
                                                 const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.emplace_back(s.sha1);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

caf::expected<reply> client::eval(const script& s, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args) {
  auto argv = evalsha_command(s, keys, args);
  auto r = exec(argv);
  if (r && r->is_error() && r->str.compare(0, 8, "NOSCRIPT") == 0) {
    ++noscript_fallbacks_;
    argv[0] = "EVAL";
    argv[1] = std::string{s.text};
    r = exec(argv);
  }
  if (r && r->is_error())
    return error_reply(std::move(r->str));
  return r;
}

} // namespace batchq::redis
