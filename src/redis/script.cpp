#include "src/redis/script.hpp"

#include "src/redis/embedded_scripts.hpp"

namespace batchq::redis {

const script* find_script(std::string_view name) {
  for (const script* s : scripts::all())
    if (s->name == name)
      return s;
  return nullptr;
}

} // namespace batchq::redis
