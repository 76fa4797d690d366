// A Lua script embedded at build time from src/redis/scripts/<name>.lua.
//
// The generated header src/redis/embedded_scripts.hpp (see embed_scripts.cmake)
// declares one `batchq::redis::scripts::<name>` per file; `client::eval` runs a
// script by its SHA1 (EVALSHA) and falls back to EVAL when Redis answers
// NOSCRIPT. Scripts are immutable constants: safe to share between threads.
// What each script does, its KEYS and ARGV: the header comment of its .lua file
// and docs/redis-layout.md.
#pragma once

#include <string_view>

namespace batchq::redis {

/// One atomic Redis operation, written in Lua.
struct script {
  /// The file name without `.lua`, e.g. "job_create".
  std::string_view name;
  /// The exact bytes of the .lua file.
  std::string_view text;
  /// Lower-case hex SHA1 of `text`: the digest Redis uses for EVALSHA
  /// (and answers to SCRIPT LOAD).
  std::string_view sha1;
};

/// The embedded script called `name`, or nullptr.
const script* find_script(std::string_view name);

} // namespace batchq::redis
