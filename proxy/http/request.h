// Request: one parsed HTTP/1.x request head as the client sent it.
//
// Everything is raw (no percent-decoding) except QueryParam(). Header names keep
// their original case and order; lookups are case-insensitive. The server fills a
// Request before calling the handler and never changes it afterwards (trailers
// of chunked bodies are ignored), so references into it stay valid for the
// lifetime of the Exchange that owns it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "proxy/http/header.h"

namespace litefs::http {

struct Request {
  std::string method;   // "GET", "POST", ... as llhttp names it
  std::string target;   // raw request-target: "/path?query", "http://h/p", "*", "host:443"
  int http_major = 1;
  int http_minor = 1;
  Headers headers;      // original case, original order, duplicates kept
  bool keep_alive = true;  // the client allows another request on this connection
  // The client asked for a protocol switch (Upgrade header or CONNECT). Served as
  // an ordinary request for now; the proxy milestone tunnels it after a 101.
  bool upgrade = false;
  std::string peer;     // client address, "127.0.0.1:5000" or "[::1]:5000"

  // Raw path without the query ("/a%20b"); for an absolute-form target
  // ("http://host/p?q") the path part ("/p", or "/" when empty). Other forms
  // ("*", CONNECT's "host:port") are returned whole.
  std::string_view path() const;
  // Raw query without the '?' ("a=1&b=2"), empty when there is none.
  std::string_view query() const;

  // Value of the first header called `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const { return FindHeader(headers, name); }

  // Percent-decoded value ('+' is a space) of the first query parameter called
  // `name` (compared after decoding); "" for "?name" or "?name="; nullopt when absent.
  std::optional<std::string> QueryParam(std::string_view name) const;

  // Empties every field but keeps string capacity (the server reuses Requests).
  void Clear();
};

// The value of a hex digit (either case), or -1.
int HexDigitValue(char c);

// Decodes %XX escapes (and '+' as space when plus_as_space). A malformed escape
// ("%zz", trailing "%") is kept verbatim rather than failing.
std::string PercentDecode(std::string_view s, bool plus_as_space);

}  // namespace litefs::http
