// Header rewriting for a reverse proxy hop (RFC 9110 section 7.6): the
// request head sent to the target and the response headers sent back.
//
// Hop-by-hop fields (Connection and every field it names, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// Proxy-Authenticate, Proxy-Authorization) never cross the proxy, except the
// Upgrade handshake of a request being tunnelled. Expect is answered by the
// proxy itself. X-Forwarded-For gets the client's address appended;
// X-Forwarded-Proto and X-Forwarded-Host are set when the client did not
// send them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/header.h"
#include "proxy/http/request.h"

namespace litefs::proxy {

struct ForwardedRequest {
  bool chunked_body = false;  // the head announces a chunked body: frame each write
  bool has_body = false;      // a body follows the head
};

// Serialises the request head to send to the target into `out` (cleared
// first). `extra` headers are appended as given. `tunnel` keeps the
// Connection: upgrade / Upgrade pair.
ForwardedRequest BuildUpstreamRequest(const http::Request& request, bool tunnel,
                                      const std::vector<http::Header>& extra, std::string& out);

// Removes hop-by-hop fields from a response's headers (keeping the Upgrade
// handshake of a 101 when `tunnel`).
void StripHopByHop(http::Headers& headers, bool tunnel);

// "1.2.3.4" from "1.2.3.4:5678", "::1" from "[::1]:5678".
std::string_view PeerHost(std::string_view peer);

}  // namespace litefs::proxy
