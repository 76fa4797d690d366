// Bugs in src/ that are known and being fixed: the fuzzers let these through so
// that a run keeps looking for new ones. Each entry names the bug; delete it
// when the fix lands (then the fuzzers treat it as a crash again). With
// BATCHQ_FUZZ_STRICT set in the environment nothing is let through: that
// checks a fix against fuzz/regressions/pending/ before the entry goes.
// Pure functions: safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdlib>
#include <string_view>

namespace batchq::fuzz {

/// BATCHQ_FUZZ_STRICT is set: no bug is known.
inline bool strict() {
  static const bool yes = std::getenv("BATCHQ_FUZZ_STRICT") != nullptr;
  return yes;
}

/// `{"query": 1e999999}`: json::parse throws out_of_range.406 (number
/// overflow), which src/job/parse.cpp does not catch (HTTP 500).
inline bool known_bug(const nlohmann::json::exception& e) {
  return !strict() && e.id == 406;
}

/// The same bug as seen by the HTTP fuzzer: the 500 body that the exception
/// handler of src/http/server.cpp writes for it.
inline bool known_bug_body(std::string_view body) {
  return !strict() && body.find("out_of_range.406") != std::string_view::npos;
}

/// Found by fuzz_job_parse (docs/fuzzing.md, reported, not fixed yet):
/// src/job/parse.cpp's valid_utf8 checks only the byte structure, so a form or
/// URL value such as `query=%F7%8E%8A%9A` (lead byte F5-F7, C0/C1 overlongs,
/// E0/F0 overlongs, surrogates ED A0-BF, code points above U+10FFFF) is
/// accepted, and nlohmann's dump() throws type_error.316 on it later.
/// True when `s` passes that structural check but is not strict UTF-8.
inline bool known_bug_loose_utf8(std::string_view s) {
  auto structural = [](std::string_view x) {
    size_t i = 0;
    while (i < x.size()) {
      auto c = static_cast<unsigned char>(x[i]);
      size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 9;
      if (n == 9 || i + n >= x.size())
        return false;
      for (size_t k = 1; k <= n; ++k)
        if ((static_cast<unsigned char>(x[i + k]) >> 6) != 0x2)
          return false;
      i += n + 1;
    }
    return true;
  };
  if (strict() || !structural(s))
    return false;
  try {
    (void)nlohmann::json(std::string{s}).dump();
    return false;
  } catch (const nlohmann::json::exception&) {
    return true;
  }
}

} // namespace batchq::fuzz
