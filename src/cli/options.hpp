// Turning command-line words into batchq's configuration, shared by every
// command of the `batchq` program: `--config-file=<ini>` plus
// `--section.key=value` flags go through batchq::config (CAF's parser), then
// config::validate(). Precedence: built-in default < INI file < flag
// (docs/running.md).
//
// Pure functions over a caller-owned config object; no threads.
#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "src/config/settings.hpp"

namespace batchq::cli {

/// What every command that starts an actor system does first: registers
/// batchq's message types, loads the io middleman, load_config(), and sets
/// the cluster protocol identifier (`middleman.app-identifiers`).
caf::expected<settings> load_node_config(config& cfg, const std::string& config_file,
                                         const std::vector<std::string>& flags);

/// The help text listing batchq's configuration keys as flags, one per line
/// with its description, for `batchq serve --help` and `batchq cancel --help`.
std::string config_keys_help();

} // namespace batchq::cli
