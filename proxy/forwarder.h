// Forwarder: relays one client exchange to a target over a pooled upstream
// connection — request head and streamed body out, response head and
// streamed body back — with backpressure both ways, so memory stays bounded
// by a few buffers whatever the body sizes and peer speeds.
//
// Failures: a target that cannot be reached or fails before answering gives
// 502 "Proxy error: <why>" (a bodiless request that failed on a reused
// keep-alive connection, before any response byte, is retried once on a fresh
// one: the target may have closed it while idle); a failure after the response
// head was sent closes the client connection, the only signal left. A client
// that goes away closes the upstream connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/http/exchange.h"
#include "proxy/http/header.h"

namespace litefs::proxy {

class ReverseProxy;

struct ForwardPlan {
  std::string target;                        // "host:port"
  std::vector<http::Header> request_headers;  // added to the forwarded request
  // Write on the primary: answer with the read-your-writes token of every
  // database that changed since `change_seq`.
  bool issue_token = false;
  uint64_t change_seq = 0;
  // Read whose token was stale: say so in the response.
  bool stale_token = false;
};

void Forward(ReverseProxy& proxy, std::shared_ptr<http::Exchange> ex, ForwardPlan plan);

}  // namespace litefs::proxy
