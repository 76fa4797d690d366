// libFuzzer target: batchq::job::parse_form and url_decode (src/job/form.hpp),
// which read form bodies and URL query strings.
//
// The whole input is the form body / the text to decode. Invariants (a
// violation aborts):
//  - neither throws (parse_form "never fails");
//  - parse_form returns an object whose leaves are all strings, with no more
//    leaves than the input has `&`-separated pairs, and no empty array;
//  - url_decode never makes text longer, leaves text without '%' and '+'
//    unchanged, and inverts percent-encoding: url_decode(encode(x)) == x.
#include "src/job/form.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_form: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// Counts leaves; every leaf must be a string.
size_t leaves(const nlohmann::json& x) {
  if (x.is_string())
    return 1;
  if (x.is_array() && x.empty())
    fail("parse_form made an empty array");
  if (!x.is_array() && !x.is_object())
    fail("parse_form made a leaf that is not a string", x.type_name());
  size_t n = 0;
  for (const auto& v : x)
    n += leaves(v);
  return n;
}

std::string percent_encode(std::string_view x) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : x) {
    out += '%';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  try {
    auto root = batchq::job::parse_form(in);
    if (!root.is_object())
      fail("parse_form did not return an object");
    size_t pairs = 1;
    for (char c : in)
      pairs += c == '&';
    size_t n = 0;
    for (const auto& v : root)
      n += leaves(v);
    if (n > pairs)
      fail("parse_form made more leaves than pairs", std::to_string(n));

    auto decoded = batchq::job::url_decode(in);
    if (decoded.size() > in.size())
      fail("url_decode made the text longer");
    if (in.find_first_of("%+") == std::string_view::npos && decoded != in)
      fail("url_decode changed text without '%' or '+'");
    if (batchq::job::url_decode(percent_encode(in)) != in)
      fail("url_decode(percent-encoded x) != x");
  } catch (const std::exception& e) {
    fail("exception escaped", e.what());
  } catch (...) {
    fail("non-std exception escaped");
  }
  return 0;
}
