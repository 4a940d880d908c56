// Serialising an HTTP/1.1 response head: status line with reason phrase and
// header lines. Appends to a caller-owned buffer (no allocation beyond its
// growth). Defends against response splitting: CR and LF inside a value become
// spaces and a header with an invalid name is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace litefs::http {

// Standard reason phrase ("Not Found"), or "Status" for codes without one.
std::string_view ReasonPhrase(int status);

// Appends "HTTP/1.1 <status> <reason>\r\n". Always HTTP/1.1, also to 1.0 clients.
void AppendStatusLine(std::string& out, int status);

// Appends "<name>: <value>\r\n". Returns false (and appends nothing) when the
// name is empty or not an RFC 9110 token.
bool AppendHeaderLine(std::string& out, std::string_view name, std::string_view value);

// Appends "<name>: <decimal>\r\n".
void AppendHeaderLine(std::string& out, std::string_view name, uint64_t value);

}  // namespace litefs::http
