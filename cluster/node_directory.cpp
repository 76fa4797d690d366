#include "cluster/node_directory.hpp"

#include <caf/io/middleman.hpp>

#include "cluster/node_registry.hpp"
#include "messages/error.hpp"

namespace batchq::cluster {

middleman_node_directory::middleman_node_directory(caf::actor_system& sys, redis::endpoint ep)
  : sys_(sys), client_(std::move(ep)) {
}

caf::expected<cluster_gate_actor> middleman_node_directory::gate_of(const std::string& node_id) {
  node_info n;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto r = read_node(client_, node_id);
    if (!r)
      return r.error();
    if (!*r)
      return make_error(ec::node_unreachable, "node " + node_id + " is not registered");
    n = std::move(**r);
  }
  auto h = sys_.middleman().remote_actor<cluster_gate_actor>(n.address, n.cluster_port);
  if (!h)
    return make_error(ec::node_unreachable, "node " + node_id + " at " + n.address + ":"
                                              + std::to_string(n.cluster_port)
                                              + " cannot be reached: " + sys_.render(h.error()));
  return std::move(*h);
}

} // namespace batchq::cluster
