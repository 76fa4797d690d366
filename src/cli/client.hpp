// What the client commands (`batchq submit`, `get`, `cancel`, `list`, `watch`,
// `wip`; SPEC §9) share: the common options, one HTTP connection to a batchq
// API (SPEC §8) and the way every failure becomes one line on stderr.
//
// Common options (each command has them; flag > environment > default):
//   --url      BATCHQ_URL       http(s)://host[:port][/prefix], default http://127.0.0.1:8080
//   --user     BATCHQ_USER      the account whose jobs these are
//   --api-key  BATCHQ_API_KEY   sent as `Authorization: Bearer <key>`; never
//                               printed, never put into a URL
//   --json                      print the server's JSON (pretty) instead of text
//   --timeout  seconds per request (connect, send, answer), default 30
//
// Exit codes (docs/cli.md): a command whose request got a 2xx answer decides
// its own code; a missing --user/--api-key or a bad --url is exit 2 (usage);
// an error answer (`{"error": [...]}`), a connection failure or a timeout is
// one line `batchq <command>: <message>` on stderr and exit 1.
//
// Thread safety: an api_client is one connection used by one thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace CLI {
class App;
} // namespace CLI

namespace batchq::cli {

/// The default of --url (and BATCHQ_URL): `batchq serve`'s default listener.
inline constexpr const char* default_url = "http://127.0.0.1:8080";

struct client_options {
  std::string url = default_url;
  std::string user;
  std::string api_key;
  bool json = false;
  double timeout_s = 30;
};

/// Adds --url, --user, --api-key, --json and --timeout to `app`, stored in
/// `opts` (which must outlive the parse).
void add_client_options(CLI::App& app, client_options& opts);

/// A 2xx answer: its status, its JSON body, and the body's text as received
/// (what --json prints, keeping the server's key order).
struct api_reply {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};

using name_values = std::vector<std::pair<std::string, std::string>>;

class api_client {
public:
  /// Checks `opts` (a parsable --url; --user and --api-key given) and prepares
  /// the connection. On a problem prints `batchq <command>: <why>` naming the
  /// flag and its environment variable and returns nullptr: exit 2.
  static std::unique_ptr<api_client> make(const std::string& command, const client_options& opts);

  ~api_client();
  api_client(const api_client&) = delete;
  api_client& operator=(const api_client&) = delete;

  /// The requests. A 2xx answer with a JSON body is returned; anything else
  /// (error answer, non-JSON body, connection failure, timeout) is printed as
  /// one line on stderr and gives nullopt: exit 1. `params` are URL-encoded
  /// into the query string; `extra_wait_s` lengthens the answer timeout of a
  /// long poll.
  std::optional<api_reply> get(const std::string& path, const name_values& params = {},
                               double extra_wait_s = 0);
  /// A GET whose 2xx body is not JSON (CSV): the body as received.
  std::optional<std::string> get_text(const std::string& path, const name_values& params = {});
  std::optional<api_reply> post_json(const std::string& path, const std::string& body,
                                     const name_values& headers = {});
  std::optional<api_reply> del(const std::string& path);

  /// Paths of SPEC §8 for the --user (each segment percent-encoded).
  std::string jobs_path() const;                      // /user/{u}/api/v2/sql/job
  std::string job_path(const std::string& id) const;  // .../sql/job/{id}
  std::string wip_path() const;                       // /user/{u}/api/v1/jobs-wip

  /// Follows job `id` until its status is final: a first GET, then long polls
  /// (`?wait=<wait_s>`; the server answers when the job is final or the wait
  /// ran out). Calls `on_update` with every job received, the final one
  /// included. Returns the final answer, or nullopt after a failed request
  /// (printed). Never spins: a non-final answer that came back early is
  /// followed by a pause for the rest of `wait_s`.
  std::optional<api_reply> follow_job(const std::string& id, double wait_s,
                                      const std::function<void(const api_reply&)>& on_update);

  /// Prints `batchq <command>: <message>` on stderr.
  void fail(const std::string& message) const;

private:
  struct impl;
  explicit api_client(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The server's JSON text on stdout, pretty (2-space indent, the server's
/// key order, one document, newline).
void print_json(const std::string& raw);
/// A JSON document built here on stdout, the same way.
void print_json(const nlohmann::ordered_json& doc);

/// One job as `get` and `submit --wait` show it: the server's JSON with
/// --json (`as_json`), else the text of format.hpp render_job.
void print_job(const api_reply& job, bool as_json);

/// The exit code of a command that waited for a job: 0 when `done`, 1 for any
/// other final status (failed, cancelled, unknown).
int exit_code_of(const nlohmann::json& job);

/// The milliseconds since the epoch now (the "now" of format.hpp).
int64_t now_ms();

} // namespace batchq::cli
