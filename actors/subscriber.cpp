#include "actors/spawn.hpp"
#include "actors/subscriber.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/error.hpp"
#include "src/config/settings.hpp"
#include "src/log/log.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/subscription.hpp"

namespace batchq {

subscriber_settings subscriber_settings::from(const settings& s) {
  subscriber_settings x;
  x.endpoint.host = s.redis_host;
  x.endpoint.port = s.redis_port;
  x.endpoint.db = s.redis_db;
  x.rescan_interval = std::chrono::seconds{s.batch_rescan_interval};
  return x;
}

namespace {

/// The subscriber's own handle type: the public interface plus its periodic
/// timer `(rescan, tick)` (a public `rescan` re-reads once and does not touch
/// the timer, so the SUBSCRIBE thread's rescans never start a second timer).
using subscriber_impl = subscriber_actor::extend<caf::reacts_to<rescan_atom, tick_atom>>;

std::string render(const caf::error& err) {
  auto text = message_of(err);
  return text.empty() ? caf::to_string(err) : text;
}

/// The SUBSCRIBE thread: subscribe, forward every message as `wants`, on a
/// broken connection wait (backoff) and subscribe again, until stop().
class subscribe_loop {
public:
  subscribe_loop(redis::endpoint ep, redis::backoff_policy backoff, caf::actor_addr target)
    : ep_(std::move(ep)), backoff_(backoff), target_(std::move(target)) {
    thread_ = std::thread{[this] { run(); }};
  }

  ~subscribe_loop() { stop(); }

  /// Makes the thread return (interrupting a blocked read) and joins it.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mx_};
      stop_ = true;
      if (current_ != nullptr)
        current_->interrupt();
    }
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }

  bool ready() const noexcept { return ready_; }

private:
  template <class... Ts>
  void tell(Ts&&... xs) {
    auto hdl = caf::actor_cast<subscriber_actor>(caf::actor_cast<caf::strong_actor_ptr>(target_));
    if (hdl)
      caf::anon_send(hdl, std::forward<Ts>(xs)...);
  }

  void run() {
    auto delay = backoff_.initial;
    const std::vector<std::string> channels{std::string{redis::keys::users_channel}};
    for (;;) {
      auto sub = redis::subscription::open(ep_, channels);
      if (sub) {
        {
          std::lock_guard<std::mutex> guard{mx_};
          if (stop_)
            return;
          current_ = sub->get();
        }
        ready_ = true;
        delay = backoff_.initial;
        log::info("subscribed", {{"channel", channels[0]}});
        // Messages published while we were not subscribed are lost: re-read.
        tell(rescan_atom::value);
        for (;;) {
          auto msg = (*sub)->next(std::chrono::milliseconds{-1});
          if (!msg) {
            bool stopping;
            {
              std::lock_guard<std::mutex> guard{mx_};
              current_ = nullptr;
              stopping = stop_;
            }
            ready_ = false;
            if (stopping)
              return;
            log::warning("subscription lost", {{"error", render(msg.error())}});
            break;
          }
          if (*msg && !(*msg)->payload.empty())
            tell(wants_atom::value, std::move((*msg)->payload));
        }
      } else {
        log::warning("subscribe failed", {{"error", render(sub.error())},
                                          {"retry_ms", std::to_string(delay.count())}});
      }
      std::unique_lock<std::mutex> lock{mx_};
      if (cv_.wait_for(lock, delay, [this] { return stop_; }))
        return;
      delay = std::min(delay * 2, backoff_.max);
    }
  }

  redis::endpoint ep_;
  redis::backoff_policy backoff_;
  caf::actor_addr target_;
  std::mutex mx_;
  std::condition_variable cv_;
  bool stop_ = false;
  /// The open subscription while the thread reads it (guarded by mx_).
  redis::subscription* current_ = nullptr;
  std::atomic<bool> ready_{false};
  std::thread thread_;
};

struct subscriber_state {
  subscriber_settings cfg;
  scheduler_actor scheduler;
  std::shared_ptr<ports::queue_index> index;
  /// The start-up rebuild of the index succeeded.
  bool rebuilt = false;
  std::unique_ptr<subscribe_loop> loop;

  /// Stops and joins the SUBSCRIBE thread.
  ~subscriber_state() { loop.reset(); }

  static inline const char* name = "subscriber";
};

using self_ptr = subscriber_impl::stateful_pointer<subscriber_state>;

/// Reads the index (the start-up rebuild until it has succeeded once) and
/// reports every user in it. Returns false when the read failed.
bool read_index(self_ptr self) {
  auto& st = self->state;
  auto users = st.rebuilt ? st.index->users() : st.index->rebuild();
  if (!users) {
    log::warning(st.rebuilt ? "queue index read failed" : "queue index rebuild failed",
                 {{"error", render(users.error())}});
    return false;
  }
  if (!st.rebuilt)
    log::info("queue index rebuilt", {{"users", std::to_string(users->size())}});
  st.rebuilt = true;
  for (auto& user : *users)
    self->send(st.scheduler, wants_atom::value, std::move(user));
  return true;
}

subscriber_impl::behavior_type subscriber(self_ptr self) {
  self->send(self, rescan_atom::value, tick_atom::value);
  return {
    [=](wants_atom, const std::string& user) {
      self->send(self->state.scheduler, wants_atom::value, user);
    },
    [=](rescan_atom) {
      // One-shot (e.g. after a reconnect, when the index connection may be
      // stale too): retried until it succeeds, without touching the timer.
      if (!read_index(self))
        self->delayed_send(self, self->state.cfg.retry_interval, rescan_atom::value);
    },
    [=](rescan_atom, tick_atom) {
      auto ok = read_index(self);
      auto& cfg = self->state.cfg;
      self->delayed_send(self, ok ? cfg.rescan_interval : cfg.retry_interval, rescan_atom::value,
                         tick_atom::value);
    },
    [=](ready_atom) { return self->state.loop != nullptr && self->state.loop->ready(); },
  };
}

} // namespace

subscriber_actor spawn_subscriber(caf::actor_system& sys, const subscriber_settings& cfg,
                                  scheduler_actor scheduler,
                                  std::shared_ptr<ports::queue_index> index, bool detached) {
  auto init = [=](self_ptr self) {
    self->state.cfg = cfg;
    self->state.scheduler = scheduler;
    self->state.index = index;
    if (cfg.subscribe)
      self->state.loop = std::make_unique<subscribe_loop>(cfg.endpoint, cfg.backoff,
                                                          self->address());
    return subscriber(self);
  };
  subscriber_impl h = spawn_maybe_detached(sys, detached, init);
  return h;
}

} // namespace batchq
