// Small text helpers of the job model, shared with the HTTP layer (which
// depends on src/job, never the reverse). Pure functions; thread-safe.
#pragma once

#include <cctype>
#include <string_view>

namespace batchq::job {

/// `x` without leading and trailing white space (std::isspace in the C
/// locale: space, \t, \n, \v, \f, \r). A view into `x`.
inline std::string_view trim(std::string_view x) {
  while (!x.empty() && std::isspace(static_cast<unsigned char>(x.front())))
    x.remove_prefix(1);
  while (!x.empty() && std::isspace(static_cast<unsigned char>(x.back())))
    x.remove_suffix(1);
  return x;
}

} // namespace batchq::job
