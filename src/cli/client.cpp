#include "src/cli/client.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "src/cli/format.hpp"
#include "src/cli/signals.hpp"

namespace batchq::cli {

using nlohmann::json;

void add_client_options(CLI::App& app, client_options& opts) {
  const char* group = "Connection (flag, else environment variable)";
  app.add_option("--url", opts.url,
                 std::string{"the batchq API: http(s)://host[:port][/prefix] (default "}
                   + default_url + ")")
    ->envname("BATCHQ_URL")
    ->group(group);
  app.add_option("--user", opts.user, "the account whose jobs these are")
    ->envname("BATCHQ_USER")
    ->group(group);
  // No default shown and never echoed: the key only travels in the
  // Authorization header.
  app.add_option("--api-key", opts.api_key,
                 "the account's master API key (sent as `Authorization: Bearer`)")
    ->envname("BATCHQ_API_KEY")
    ->group(group);
  app.add_option("--timeout", opts.timeout_s,
                 "seconds a request may take to connect and to answer (default 30)")
    ->check(CLI::Range(0.1, 3600.0))
    ->group(group);
  app.add_flag("--json", opts.json, "print the server's JSON (pretty) instead of text");
}

struct api_client::impl {
  std::string command;
  client_options opts;
  base_url base;
  httplib::Client http;

  impl(std::string cmd, client_options o, base_url b)
    : command(std::move(cmd)), opts(std::move(o)), base(std::move(b)), http(base.origin) {
    auto whole = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::duration<double>(opts.timeout_s));
    http.set_connection_timeout(std::min(whole, std::chrono::microseconds{10'000'000}));
    http.set_write_timeout(whole);
    http.set_read_timeout(whole);
    http.set_bearer_token_auth(opts.api_key);
    http.set_keep_alive(true);
  }

  void set_wait(double extra_wait_s) {
    http.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::duration<double>(opts.timeout_s + extra_wait_s)));
  }

  std::string describe(httplib::Error e, double extra_wait_s) const {
    char secs[32];
    switch (e) {
      case httplib::Error::Connection:
        return "cannot connect to " + opts.url
               + " (is `batchq serve` running there? set --url or BATCHQ_URL)";
      case httplib::Error::ConnectionTimeout:
        std::snprintf(secs, sizeof secs, "%g", std::min(opts.timeout_s, 10.0));
        return "cannot connect to " + opts.url + " within " + secs + " s";
      case httplib::Error::Read:
        std::snprintf(secs, sizeof secs, "%g", opts.timeout_s + extra_wait_s);
        return "no complete answer from " + opts.url + " within " + secs
               + " s (the connection was closed or timed out; see --timeout)";
      case httplib::Error::Write:
        return "cannot send the request to " + opts.url + " (the connection was closed)";
      case httplib::Error::SSLConnection:
      case httplib::Error::SSLLoadingCerts:
      case httplib::Error::SSLServerVerification:
        return "TLS failure talking to " + opts.url + " (" + httplib::to_string(e) + ")";
      default:
        return "the request to " + opts.url + " failed (" + httplib::to_string(e) + ")";
    }
  }

  /// False (printed) for no answer or a non-2xx one.
  bool answered_2xx(const httplib::Result& res, double extra_wait_s) const {
    if (!res) {
      fail(describe(res.error(), extra_wait_s));
      return false;
    }
    if (res->status >= 200 && res->status < 300)
      return true;
    auto body = json::parse(res->body, nullptr, false);
    auto status = std::to_string(res->status);
    auto msg = body.is_discarded() ? std::string{} : error_message(body);
    if (msg.empty()) {
      auto text = one_line(res->body, 100);
      msg = opts.url + " answered HTTP " + status + (text.empty() ? "" : ": " + text)
            + (res->status == 404 ? " (is --url a batchq API?)" : "");
    } else {
      msg += " (HTTP " + status + ")";
    }
    fail(msg);
    return false;
  }

  std::optional<api_reply> finish(const httplib::Result& res, double extra_wait_s) const {
    if (!answered_2xx(res, extra_wait_s))
      return std::nullopt;
    auto body = json::parse(res->body, nullptr, false);
    auto status = std::to_string(res->status);
    if (body.is_discarded()) {
      fail("the server at " + opts.url + " answered HTTP " + status
           + " with a body that is not JSON (is --url a batchq API?)");
      return std::nullopt;
    }
    return api_reply{res->status, std::move(body), res->body};
  }

  void fail(const std::string& message) const {
    std::cerr << "batchq " << command << ": " << message << "\n";
  }

  std::string user_base() const { return base.prefix + "/user/" + encode_path_segment(opts.user); }
};

api_client::api_client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

api_client::~api_client() = default;

std::unique_ptr<api_client> api_client::make(const std::string& command,
                                             const client_options& opts) {
  auto say = [&](const std::string& m) { std::cerr << "batchq " << command << ": " << m << "\n"; };
  std::string why;
  auto base = parse_base_url(opts.url, why);
  if (!base) {
    say("bad --url (or BATCHQ_URL): " + why);
    return nullptr;
  }
  if (opts.user.empty()) {
    say("no user given: pass --user NAME or set BATCHQ_USER");
    return nullptr;
  }
  if (opts.api_key.empty()) {
    say("no API key given: pass --api-key KEY or set BATCHQ_API_KEY");
    return nullptr;
  }
  ignore_sigpipe(); // a server that closes early must not kill the client
  return std::unique_ptr<api_client>{new api_client{std::make_unique<impl>(command, opts, *base)}};
}

std::optional<api_reply> api_client::get(const std::string& path, const name_values& params,
                                         double extra_wait_s) {
  httplib::Params p;
  for (const auto& [k, v] : params)
    p.emplace(k, v);
  impl_->set_wait(extra_wait_s);
  auto res = impl_->http.Get(path, p, httplib::Headers{});
  impl_->set_wait(0);
  return impl_->finish(res, extra_wait_s);
}

std::optional<std::string> api_client::get_text(const std::string& path,
                                               const name_values& params) {
  httplib::Params p;
  for (const auto& [k, v] : params)
    p.emplace(k, v);
  auto res = impl_->http.Get(path, p, httplib::Headers{});
  if (!impl_->answered_2xx(res, 0))
    return std::nullopt;
  return res->body;
}

std::optional<api_reply> api_client::post_json(const std::string& path, const std::string& body,
                                               const name_values& headers) {
  httplib::Headers h;
  for (const auto& [k, v] : headers)
    h.emplace(k, v);
  auto res = impl_->http.Post(path, h, body, "application/json");
  return impl_->finish(res, 0);
}

std::optional<api_reply> api_client::del(const std::string& path) {
  auto res = impl_->http.Delete(path);
  return impl_->finish(res, 0);
}

std::string api_client::jobs_path() const {
  return impl_->user_base() + "/api/v2/sql/job";
}

std::string api_client::job_path(const std::string& id) const {
  return jobs_path() + "/" + encode_path_segment(id);
}

std::string api_client::wip_path() const {
  return impl_->user_base() + "/api/v1/jobs-wip";
}

std::optional<api_reply> api_client::follow_job(
  const std::string& id, double wait_s, const std::function<void(const api_reply&)>& on_update) {
  char wait_text[32];
  std::snprintf(wait_text, sizeof wait_text, "%g", wait_s);
  bool first = true;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = first ? get(job_path(id)) : get(job_path(id), {{"wait", wait_text}}, wait_s);
    if (!r)
      return std::nullopt;
    auto st = r->body.is_object() ? r->body.find("status") : r->body.end();
    if (st == r->body.end() || !st->is_string()) {
      fail("the server's answer for job " + id + " has no status");
      return std::nullopt;
    }
    on_update(*r);
    if (is_final_status(st->get<std::string>()))
      return r;
    if (!first) {
      // A server that ignores `wait` answers at once: never poll in a loop.
      auto took = std::chrono::steady_clock::now() - t0;
      auto want = std::chrono::duration<double>(wait_s);
      if (took < want)
        std::this_thread::sleep_for(want - took);
    }
    first = false;
  }
}

void api_client::fail(const std::string& message) const {
  impl_->fail(message);
}

void print_json(const nlohmann::ordered_json& doc) {
  std::cout << doc.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

void print_json(const std::string& raw) {
  // Parsed once more, as ordered_json, only to indent it: the keys keep the
  // server's order. (finish() already checked that it parses.)
  print_json(nlohmann::ordered_json::parse(raw, nullptr, false));
}

void print_job(const api_reply& job, bool as_json) {
  if (as_json)
    print_json(job.raw);
  else
    std::cout << render_job(to_view(job.body), now_ms());
}

int exit_code_of(const json& job) {
  auto st = job.is_object() ? job.find("status") : job.end();
  return st != job.end() && st->is_string() && st->get<std::string>() == "done" ? 0 : 1;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace batchq::cli
