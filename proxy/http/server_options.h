// Server options: limits, timeouts and the response-header hook shared by
// every connection of one Server. Plain data; defaults follow Go's net/http
// and LiteFS where they exist (read-header 10 s) and nginx-like limits otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

#include "proxy/http/header.h"

namespace litefs::http {

struct ServerOptions {
  // Request line + header lines (CRLFs included) above this -> 431 and close.
  size_t max_header_bytes = 64 * 1024;
  // More header fields than this -> 431 and close.
  size_t max_headers = 100;
  // From accept, or from the first byte of a later request on a kept-alive
  // connection, until the end of the request head. Exceeded -> 408 and close.
  // Zero disables.
  std::chrono::milliseconds header_read_timeout{10'000};
  // From the first byte of a request until the end of its body (Go's
  // ReadTimeout, as LiteFS's proxy.read-timeout). Exceeded before the
  // handler has the request -> 408 and close; after, the connection closes
  // (the handler's OnClose fires). Zero disables.
  std::chrono::milliseconds read_timeout{0};
  // From the end of a request head until its response has ended (Go's
  // WriteTimeout, as proxy.write-timeout). Exceeded -> the connection
  // closes (the handler's OnClose fires). Zero disables.
  std::chrono::milliseconds write_timeout{0};
  // How long a kept-alive connection may wait, after a response ended, for the
  // first byte of its next request before it is closed silently. Zero disables.
  std::chrono::milliseconds idle_timeout{60'000};
  // Open connections beyond this are accepted and closed at once (no response:
  // the request has not been read, and answering it could end in a reset).
  size_t max_connections = 1024;
  // When the server closes a connection after a response it first writes the
  // last byte (a client that reads nothing for idle_timeout meanwhile is
  // dropped), then sends FIN and reads and drops what the client still sends
  // for at most this long, so the client sees the response rather than a reset.
  std::chrono::milliseconds linger_timeout{2'000};
  // A request body the handler did not read is read and dropped, up to this
  // many bytes, to keep the connection; a larger (or chunked) unread body
  // closes the connection after the response instead.
  size_t max_discard_bytes = 256 * 1024;
  // Called on the header list of every response the server writes (handler
  // responses and the server's own 4xx), e.g. to add Litefs-Id.
  std::function<void(std::vector<Header>&)> add_headers;
};

}  // namespace litefs::http
