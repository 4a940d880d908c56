// HTTP header fields: a name/value pair kept in its original case and order,
// plus the case-insensitive lookups HTTP needs (RFC 9110 section 5.1).
// Pure functions over strings; no allocation except what the caller keeps.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace litefs::http {

struct Header {
  std::string name;
  std::string value;
};

using Headers = std::vector<Header>;

// ASCII case-insensitive equality, as header names compare.
bool HeaderNameEquals(std::string_view a, std::string_view b);

// The value of the first header called `name` (any case), or nullptr.
const std::string* FindHeader(const Headers& headers, std::string_view name);

// True when the comma-separated list `value` holds `token` (any case), e.g.
// "close" in "keep-alive, Close". Surrounding spaces and tabs are ignored.
bool HeaderHasToken(std::string_view value, std::string_view token);

}  // namespace litefs::http
