#include "src/cli/options.hpp"

#include <fstream>
#include <sstream>

#include <caf/io/middleman.hpp>

#include "messages/error.hpp"
#include "messages/type_ids.hpp"

namespace batchq::cli {

namespace {

// Sees the option table of batchq::config (protected in CAF's base class) to
// print help; never used to build an actor system.
class help_config : public config {
public:
  std::string keys_help() const {
    std::ostringstream out;
    for (const auto& opt : custom_options_) {
      auto cat = opt.category();
      bool mine = false;
      for (const char* s : {"redis", "http", "api", "batch", "cluster", "postgres", "log"})
        mine = mine || cat == s;
      if (!mine)
        continue;
      std::string flag = "  --" + std::string{opt.full_name().begin(), opt.full_name().end()}
                         + "=VALUE";
      if (flag.size() < 34)
        flag.resize(34, ' ');
      else
        flag += "  ";
      out << flag << std::string{opt.description().begin(), opt.description().end()} << '\n';
    }
    return out.str();
  }
};

} // namespace

caf::expected<settings> load_node_config(config& cfg, const std::string& config_file,
                                         const std::vector<std::string>& flags) {
  register_types(cfg);
  cfg.load<caf::io::middleman>();
  auto s = load_config(cfg, config_file, flags);
  if (s)
    cfg.set("middleman.app-identifiers", std::vector<std::string>{protocol_id});
  return s;
}

std::string config_keys_help() {
  help_config cfg;
  return cfg.keys_help();
}

} // namespace batchq::cli
