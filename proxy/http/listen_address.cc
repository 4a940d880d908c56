// Listen address parsing and resolution (see listen_address.h).
#include "proxy/http/listen_address.h"

#include <netdb.h>
#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace litefs::http {

Result<HostPort> ParseHostPort(std::string_view addr) {
  std::string_view host;
  std::string_view port;
  if (!addr.empty() && addr.front() == '[') {
    size_t close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return Status::Error("invalid address (want [ipv6]:port)");
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return Status::Error("missing port (want host:port or :port)");
    host = addr.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return Status::Error("IPv6 addresses need brackets (want [ipv6]:port)");
    }
    port = addr.substr(colon + 1);
  }
  int value = -1;
  auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || value < 0 ||
      value > 65535) {
    return Status::Error("invalid port \"" + std::string(port) + "\"");
  }
  return HostPort{std::string(host), value};
}

Result<std::vector<sockaddr_storage>> ResolveListenAddress(const HostPort& hp) {
  std::vector<sockaddr_storage> out;
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof(ss));
  if (hp.host.empty()) {
    uv_ip6_addr("::", hp.port, reinterpret_cast<sockaddr_in6*>(&ss));
    out.push_back(ss);
    uv_ip4_addr("0.0.0.0", hp.port, reinterpret_cast<sockaddr_in*>(&ss));
    out.push_back(ss);
    return out;
  }
  if (uv_ip4_addr(hp.host.c_str(), hp.port, reinterpret_cast<sockaddr_in*>(&ss)) == 0 ||
      uv_ip6_addr(hp.host.c_str(), hp.port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) {
    out.push_back(ss);
    return out;
  }
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return Status::Error(std::string("cannot resolve host: ") + gai_strerror(rc));
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    std::memset(&ss, 0, sizeof(ss));
    if (ai->ai_family == AF_INET) {
      std::memcpy(&ss, ai->ai_addr, sizeof(sockaddr_in));
      reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(static_cast<uint16_t>(hp.port));
    } else if (ai->ai_family == AF_INET6) {
      std::memcpy(&ss, ai->ai_addr, sizeof(sockaddr_in6));
      reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(static_cast<uint16_t>(hp.port));
    } else {
      continue;
    }
    out.push_back(ss);
  }
  freeaddrinfo(res);
  if (out.empty()) return Status::Error("host has no IPv4 or IPv6 address");
  // Like Go: a name that has both (localhost) listens on its IPv4 address.
  std::stable_sort(out.begin(), out.end(), [](const sockaddr_storage& a, const sockaddr_storage& b) {
    return a.ss_family == AF_INET && b.ss_family != AF_INET;
  });
  return out;
}

}  // namespace litefs::http
