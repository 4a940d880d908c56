// LiteFS's proxy path patterns (`proxy.passthrough`, `proxy.always-forward`):
// a glob where `*` matches any run of characters, `/` and nothing included,
// and every other character is literal. A pattern matches the whole path
// (never the query string).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace litefs::proxy {

bool PathMatches(std::string_view pattern, std::string_view path);
bool AnyPathMatches(const std::vector<std::string>& patterns, std::string_view path);

}  // namespace litefs::proxy
