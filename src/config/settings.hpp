// batchq's configuration: every key of SPEC §9, loaded from one INI file in
// CAF's format and overridden by `--section.key=value` flags.
//
// Precedence (documented once, here and in docs/configuration.md):
//   built-in default  <  INI file (`--config-file=PATH`)  <  command-line flag.
//
// `config` is a caf::actor_system_config, so the same object also configures the
// actor system. `settings` is the validated, plain copy that spawn_* factories
// take; actors never read configuration themselves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

namespace batchq {

enum class on_node_loss { fail, requeue };

/// Validated configuration values (SPEC §9). Times keep the unit of their key.
struct settings {
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  int32_t redis_db = 5;

  std::string http_bind = "127.0.0.1";
  uint16_t http_port = 8080;

  int64_t api_max_payload = 16384;             // bytes
  std::string api_user_from_host = R"(^([^.]+)\.)";
  bool api_allow_regular_keys = false;

  int64_t batch_max_queued_jobs = 64;
  int64_t batch_capacity = 4;                  // statements per database host, cluster-wide
  int64_t batch_max_running = 8;               // jobs (and so leases) at once on this node
  int64_t batch_query_timeout = 43200000;      // ms
  int64_t batch_finished_jobs_ttl = 7200;      // s
  int64_t batch_lease_ttl = 5000;              // ms
  int64_t batch_rescan_interval = 60;          // s
  int64_t batch_sweep_interval = 5;            // s
  on_node_loss batch_on_node_loss = on_node_loss::fail;
  int64_t batch_shutdown_grace = 10;           // s
  int64_t batch_turn_slice = 5;                // ms a contended turn may go on (0: one job)

  std::string cluster_node_id;                 // default: host name + pid
  uint16_t cluster_port = 0;                   // 0 = ephemeral
  std::string cluster_bind = "127.0.0.1";      // address the middleman listens on
  std::string cluster_advertise;               // address registered; default: cluster_bind
  std::string cluster_secret;                  // proof between nodes; env BATCHQ_CLUSTER_SECRET

  int64_t results_max_bytes = 16777216;        // stored-row bytes a job keeps (SPEC §11)
  int64_t results_page_rows = 1000;            // default `limit` of a results page

  uint16_t postgres_port = 5432;
  int64_t postgres_result_grace = 5000;        // ms (pg::session_options::result_grace)

  std::string log_format = "text";             // text | json
  std::string log_level = "info";              // debug | info | warning | error
};

/// The actor-system configuration with batchq's options registered.
class config : public caf::actor_system_config {
public:
  config();

  /// Validates the parsed values into `settings`, or returns
  /// `ec::invalid_config` with a message naming the key and the problem.
  caf::expected<settings> validate() const;

  /// "section.key" of every batchq option (not CAF's own), in declaration order.
  std::vector<std::string> option_names() const;

  /// True when "section.key" names one of batchq's boolean options (CAF's
  /// command line takes those as bare flags only).
  bool is_flag(const std::string& name) const;

private:
  // Raw option storage, bound to CAF's option parser.
  settings raw_;
  std::string on_node_loss_;
  int64_t redis_port_ = 6379, http_port_ = 8080, cluster_port_ = 0, postgres_port_ = 5432;
};

/// Loads `config_file` (when not empty) and `flags` (each `--section.key=value`,
/// or any other CAF option such as `--scheduler.max-threads=4`) into `cfg` and
/// validates the result. Errors (ec::invalid_config) carry a message fit for a
/// person: an unreadable file, an unknown option, a value out of range.
caf::expected<settings> load_config(config& cfg, const std::string& config_file,
                                    const std::vector<std::string>& flags);

const char* to_string(on_node_loss x);

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& address);

/// "host name + pid", the default cluster.node-id.
std::string default_node_id();

/// CAF's scheduler.max-threads unless a file or flag sets it: half the cores,
/// at least 1 (config::config).
size_t default_scheduler_threads();

} // namespace batchq
