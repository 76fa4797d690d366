// `batchq cancel <job_id>`: the job's owner from Redis, then the canceller of
// a small actor system (cluster::cancel_front) does what a node's canceller
// does. Prints the resulting status, or why it cannot be cancelled.
#include <iostream>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "cluster/node.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/options.hpp"
#include "src/cli/signals.hpp"
#include "src/log/log.hpp"
#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"

namespace batchq::cli {

int cancel(const cancel_options& opts) {
  config cfg;
  register_types(cfg);
  cfg.load<caf::io::middleman>();
  auto s = load_config(cfg, opts.config_file, opts.flags);
  if (!s) {
    std::cerr << "batchq cancel: " << message_of(s.error()) << "\n";
    return 2;
  }
  cfg.set("middleman.app-identifiers", std::vector<std::string>{protocol_id});
  // Quiet by default: stdout carries the answer, stderr only problems.
  auto lvl = log::parse_level(s->log_level);
  if (lvl < log::level::warning)
    lvl = log::level::warning;
  auto front_id = "cli-" + std::to_string(::getpid());
  log::configure(s->log_format == "json", lvl, front_id);
  ignore_sigpipe(); // libpq's cancel (the pg_cancel_backend fallback) uses send()

  // Whose job is it? (The canceller needs the user; a CLI caller is trusted.)
  redis::client rc{redis::endpoint{s->redis_host, s->redis_port, s->redis_db}};
  auto rec = redis::read_job(rc, opts.job_id);
  if (!rec) {
    std::cerr << "batchq cancel: Redis at " << s->redis_host << ":" << s->redis_port
              << " cannot be read: " << message_of(rec.error()) << "\n";
    return 1;
  }
  if (!*rec || (*rec)->count("user") == 0) {
    std::cout << "Job with id " << opts.job_id << " not found\n";
    return 1;
  }
  auto user = (*rec)->at("user");

  caf::actor_system sys{cfg};
  int code = 1;
  {
    cluster::cancel_front front{sys, *s, front_id};
    auto res = front.cancel(opts.job_id, user, std::chrono::seconds{30});
    if (res) {
      std::cout << res->status << "\n";
      code = res->status == "cancelled" ? 0 : 1;
    } else {
      auto m = message_of(res.error());
      std::cout << (m.empty() ? sys.render(res.error()) : m) << "\n";
    }
  }
  return code;
}

} // namespace batchq::cli
