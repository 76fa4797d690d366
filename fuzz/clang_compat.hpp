// Force-included (-include) into batchq_config in the clang fuzz build only
// (fuzz/CMakeLists.txt): src/config/settings.cpp compares a caf::string_view
// with a `const char*` (`s == mine`), which gcc 12 accepts and clang 14
// rejects (no viable operator== in CAF 0.17.6). This declares that operator
// so that the unchanged source builds; delete it once settings.cpp compares
// through caf::string_view{mine} or std::string_view.
#pragma once

#include <caf/string_view.hpp>

namespace caf {

inline bool operator==(string_view x, const char* y) {
  return x.compare(y) == 0;
}

} // namespace caf
