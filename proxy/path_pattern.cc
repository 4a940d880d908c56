// Glob matching for proxy path patterns (see path_pattern.h).
#include "proxy/path_pattern.h"

namespace litefs::proxy {

// Iterative wildcard match with single-star backtracking: linear in practice,
// never exponential however many stars the pattern has.
bool PathMatches(std::string_view pattern, std::string_view path) {
  size_t p = 0, s = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (s < path.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = s;
    } else if (p < pattern.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool AnyPathMatches(const std::vector<std::string>& patterns, std::string_view path) {
  for (const std::string& pattern : patterns) {
    if (PathMatches(pattern, path)) return true;
  }
  return false;
}

}  // namespace litefs::proxy
