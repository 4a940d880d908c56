// Tunnel: after a 101 Switching Protocols, copies bytes both ways between the
// client's socket and the target's until both directions have ended.
//
// Each direction reads from one side and writes to the other, and stops
// reading while more than a bounded amount waits to be written (memory stays
// bounded however the peers behave). An EOF is passed on as a half-close
// (shutdown of the write side); a read or write error closes both sockets.
// The tunnel owns both handles and deletes itself when done.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

namespace litefs::proxy {

class Tunnel;

// Takes ownership of both (open, not reading) streams. `client_early` was
// sent by the client after its request head and goes to the target first;
// `target_early` followed the target's 101 head and goes to the client first.
// TCP keepalive is turned on for both, so a peer that vanished is noticed.
// `on_closed` runs once both sockets are closed; the tunnel is gone then.
Tunnel* StartTunnel(uv_tcp_t* client, std::string client_early, uv_tcp_t* target, std::string target_early,
                    std::function<void()> on_closed);
// Closes both sockets now (shutdown); on_closed follows.
void CloseTunnel(Tunnel* tunnel);

}  // namespace litefs::proxy
