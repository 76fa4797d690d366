#include "cluster/node_registry.hpp"

#include <cstdlib>

#include "messages/error.hpp"
#include "src/redis/keys.hpp"

namespace batchq::cluster {

redis::field_list to_fields(const node_info& n) {
  return {{"address", n.address},
          {"cluster_port", std::to_string(n.cluster_port)},
          {"http_port", std::to_string(n.http_port)},
          {"version", n.version},
          {"started_at", n.started_at}};
}

namespace {

std::optional<uint16_t> parse_port(const std::string& text, bool zero_ok) {
  if (text.empty() || text.size() > 5)
    return std::nullopt;
  for (char ch : text)
    if (ch < '0' || ch > '9')
      return std::nullopt;
  auto v = std::strtol(text.c_str(), nullptr, 10);
  if (v > 65535 || (v == 0 && !zero_ok))
    return std::nullopt;
  return static_cast<uint16_t>(v);
}

} // namespace

caf::expected<std::optional<node_info>> read_node(redis::client& c, const std::string& node_id) {
  auto r = c.command({"HGETALL", redis::keys::node(node_id)});
  if (!r)
    return r.error();
  if (!r->is_array() || r->elements.empty())
    return std::optional<node_info>{};
  node_info n;
  n.node_id = node_id;
  std::string cluster_port, http_port;
  const auto& el = r->elements;
  for (size_t i = 0; i + 1 < el.size(); i += 2) {
    const auto& k = el[i].str;
    const auto& v = el[i + 1].str;
    if (k == "address")
      n.address = v;
    else if (k == "cluster_port")
      cluster_port = v;
    else if (k == "http_port")
      http_port = v;
    else if (k == "version")
      n.version = v;
    else if (k == "started_at")
      n.started_at = v;
  }
  auto cp = parse_port(cluster_port, false);
  if (!cp)
    return make_error(ec::invalid_config, "node " + node_id + " has no usable cluster_port (\""
                                            + cluster_port + "\")");
  n.cluster_port = *cp;
  n.http_port = parse_port(http_port, true).value_or(0);
  return std::optional<node_info>{std::move(n)};
}

node_registry::node_registry(redis::endpoint ep, node_info self,
                             std::chrono::milliseconds heartbeat)
  : client_(std::move(ep)), self_(std::move(self)), heartbeat_(heartbeat) {
}

caf::error node_registry::announce() {
  auto key = redis::keys::node(self_.node_id);
  std::vector<std::string> hset{"HSET", key};
  for (auto& [f, v] : to_fields(self_)) {
    hset.push_back(f);
    hset.push_back(v);
  }
  auto r = client_.pipeline({hset, {"PEXPIRE", key, std::to_string(ttl().count())}});
  if (!r)
    return r.error();
  for (const auto& x : *r)
    if (x.is_error())
      return make_error(ec::redis_error, "registering node " + self_.node_id + ": " + x.str);
  return caf::none;
}

caf::error node_registry::withdraw() {
  auto r = client_.command({"DEL", redis::keys::node(self_.node_id)});
  if (!r)
    return r.error();
  return caf::none;
}

} // namespace batchq::cluster
