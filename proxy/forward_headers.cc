// Request/response header rewriting for a proxy hop (see forward_headers.h).
#include "proxy/forward_headers.h"

#include <algorithm>
#include <array>

namespace litefs::proxy {
namespace {

constexpr std::array<std::string_view, 9> kHopByHop = {
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"};

bool IsListedInConnection(const http::Headers& headers, std::string_view name) {
  for (const http::Header& h : headers) {
    if (http::HeaderNameEquals(h.name, "Connection") && http::HeaderHasToken(h.value, name)) {
      // "Connection: upgrade" names Upgrade; handled by the tunnel flag.
      return true;
    }
  }
  return false;
}

bool IsHopByHop(const http::Headers& all, const http::Header& h, bool tunnel) {
  if (tunnel && (http::HeaderNameEquals(h.name, "Upgrade") || http::HeaderNameEquals(h.name, "Connection"))) {
    return false;
  }
  for (std::string_view name : kHopByHop) {
    if (http::HeaderNameEquals(h.name, name)) return true;
  }
  return IsListedInConnection(all, h.name);
}

void AppendLine(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

std::string_view PeerHost(std::string_view peer) {
  if (!peer.empty() && peer.front() == '[') {
    size_t close = peer.find(']');
    return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
  }
  size_t colon = peer.rfind(':');
  return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

ForwardedRequest BuildUpstreamRequest(const http::Request& request, bool tunnel,
                                      const std::vector<http::Header>& extra, std::string& out) {
  ForwardedRequest fwd;
  out.clear();
  out.append(request.method);
  out.push_back(' ');
  std::string_view target = request.target;
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
    // Absolute form from a client that took us for a forward proxy: the
    // target wants origin form.
    std::string_view path = request.path();
    std::string_view query = request.query();
    out.append(path);
    if (!query.empty()) {
      out.push_back('?');
      out.append(query);
    }
  } else {
    out.append(target);
  }
  out.append(" HTTP/1.1\r\n");

  const std::string* forwarded_for = nullptr;
  bool have_proto = false, have_host_fwd = false;
  const std::string* host = nullptr;
  for (const http::Header& h : request.headers) {
    if (http::HeaderNameEquals(h.name, "Transfer-Encoding")) {
      fwd.has_body = true;
      fwd.chunked_body = true;
    }
    if (http::HeaderNameEquals(h.name, "Content-Length")) {
      fwd.has_body = h.value != "0";
    }
    if (IsHopByHop(request.headers, h, tunnel)) continue;
    if (http::HeaderNameEquals(h.name, "Expect")) continue;
    if (http::HeaderNameEquals(h.name, "X-Forwarded-For")) {
      forwarded_for = &h.value;  // rewritten below with the client appended
      continue;
    }
    if (http::HeaderNameEquals(h.name, "X-Forwarded-Proto")) have_proto = true;
    if (http::HeaderNameEquals(h.name, "X-Forwarded-Host")) have_host_fwd = true;
    if (http::HeaderNameEquals(h.name, "Host")) host = &h.value;
    AppendLine(out, h.name, h.value);
  }
  std::string_view client = PeerHost(request.peer);
  if (forwarded_for != nullptr && !forwarded_for->empty()) {
    out.append("X-Forwarded-For: ");
    out.append(*forwarded_for);
    out.append(", ");
    out.append(client);
    out.append("\r\n");
  } else {
    AppendLine(out, "X-Forwarded-For", client);
  }
  if (!have_proto) AppendLine(out, "X-Forwarded-Proto", "http");
  if (!have_host_fwd && host != nullptr) AppendLine(out, "X-Forwarded-Host", *host);
  if (fwd.chunked_body) AppendLine(out, "Transfer-Encoding", "chunked");
  for (const http::Header& h : extra) AppendLine(out, h.name, h.value);
  out.append("\r\n");
  return fwd;
}

void StripHopByHop(http::Headers& headers, bool tunnel) {
  // Decide for every field first: a Connection field names the others.
  std::vector<bool> drop(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) drop[i] = IsHopByHop(headers, headers[i], tunnel);
  size_t kept = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (drop[i]) continue;
    if (kept != i) headers[kept] = std::move(headers[i]);
    ++kept;
  }
  headers.resize(kept);
}

}  // namespace litefs::proxy
