// Listen addresses: parsing "host:port", ":port" and "[v6]:port" and turning
// them into socket addresses to bind, in the order they should be tried.
// Errors name the address as the user wrote it.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"

namespace litefs::http {

struct HostPort {
  std::string host;  // without brackets; empty means every interface
  int port = 0;      // 0 asks the kernel for a free port
};

// Splits "host:port", ":port", "[::1]:port". Fails on a missing or bad port.
Result<HostPort> ParseHostPort(std::string_view addr);

// Candidate addresses for `hp`, best first: an IP literal as is; an empty host
// as "::" (dual stack) then "0.0.0.0" for hosts without IPv6; a name through
// the resolver (synchronously, once at startup), IPv4 addresses first.
Result<std::vector<sockaddr_storage>> ResolveListenAddress(const HostPort& hp);

}  // namespace litefs::http
