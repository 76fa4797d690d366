// Loopback ports for `batchq dev` (docs/dev-mode.md): a free port for each
// embedded server, and whether the HTTP port can be listened on before
// anything starts (so a taken port fails at once with a clear message).
//
// Both answers hold for a moment only: another process may take the port
// before the server binds it. A server that then fails to start reports it
// (its log tail shows "Address already in use").
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>

#include <caf/expected.hpp>

namespace batchq::dev {

/// A TCP port on 127.0.0.1 that the kernel considered free just now (bind
/// to port 0, read the port, close). Errors (ec::invalid_config): no socket.
caf::expected<uint16_t> free_loopback_port();

/// Whether a server could listen on `host`:`port` now: bind() with
/// SO_REUSEADDR (as servers do, so a port whose old connections linger in
/// TIME_WAIT counts as free) succeeds. `host` is an IP literal or a name.
bool can_listen(const std::string& host, uint16_t port);

} // namespace batchq::dev
