// libFuzzer target: batchq::job::parse_request(body, content_type, url_query)
// (src/job/parse.hpp), what `POST .../sql/job` calls on every request.
//
// Input layout: byte 0 picks the content type (see content_types), then the
// URL query string up to the first '\n', then the body (the rest). Without a
// '\n' the query string is empty and the rest is the body.
//
// Invariants (a violation aborts, which libFuzzer reports as a crash):
//  - no exception escapes (any throw is a bug);
//  - an error is a problem of kind invalid_request with a non-empty, valid
//    UTF-8 message (it is sent to the client as JSON);
//  - an accepted request has 1..1000 steps, each with a non-empty query, and
//    every text in it is valid UTF-8 (it can be dumped as JSON).
//
// Built with libFuzzer (BATCHQ_FUZZ) and, for replaying the corpus and the
// regression inputs, with fuzz/replay_main.cpp in the normal build.
#include "src/job/parse.hpp"


#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

namespace {

constexpr std::string_view content_types[] = {
  "application/json",
  "application/x-www-form-urlencoded",
  "",
  "application/json; charset=utf-8",
  "APPLICATION/X-WWW-FORM-URLENCODED ; charset=utf-8",
  "text/plain",
  " application/json ",
  "multipart/form-data; boundary=x",
};

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_job_parse: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void check_text(const std::string& s, const char* what) {
  try {
    (void)nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception& e) {
    fail(what, e.what());
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto ct = content_types[data[0] % (sizeof(content_types) / sizeof(content_types[0]))];
  std::string_view rest{reinterpret_cast<const char*>(data) + 1, size - 1};
  std::string_view query, body = rest;
  if (auto nl = rest.find('\n'); nl != std::string_view::npos) {
    query = rest.substr(0, nl);
    body = rest.substr(nl + 1);
  }
  try {
    auto r = batchq::job::parse_request(body, ct, query);
    if (!r) {
      if (r.error().kind != batchq::job::problem_kind::invalid_request)
        fail("error of a kind other than invalid_request", r.error().message);
      if (r.error().message.empty())
        fail("empty error message", "");
      check_text(r.error().message, "error message is not valid UTF-8");
      return 0;
    }
    if (r->steps.empty() || r->steps.size() > 1000)
      fail("accepted a job with a bad number of steps", std::to_string(r->steps.size()));
    for (const auto& s : r->steps) {
      if (s.query.empty())
        fail("accepted an empty query", "");
      check_text(s.query, "accepted a query that is not valid UTF-8");
      for (const auto* x : {&s.onsuccess, &s.onerror, &s.id})
        if (*x)
          check_text(**x, "accepted a step field that is not valid UTF-8");
    }
    for (const auto* x : {&r->onsuccess, &r->onerror})
      if (*x)
        check_text(**x, "accepted a job fallback that is not valid UTF-8");
  } catch (const nlohmann::json::exception& e) {
    fail("nlohmann::json exception escaped parse_request", e.what());
  } catch (const std::exception& e) {
    fail("exception escaped parse_request", e.what());
  } catch (...) {
    fail("non-std exception escaped parse_request", "");
  }
  return 0;
}
