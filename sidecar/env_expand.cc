// Environment expansion: a transcription of Go's os.Expand and getShellName
// plus the three comparison regexps of LiteFS's config loader.
#include "sidecar/env_expand.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace litefs {
namespace {

bool IsShellSpecialVar(char c) {
  switch (c) {
    case '*': case '#': case '$': case '@': case '!': case '?': case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      return true;
    default:
      return false;
  }
}

// Go regexp \w.
bool IsWord(char c) {
  return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z');
}

// Go regexp \s (RE2 Perl class).
bool IsRegexpSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

// strings.TrimSpace for ASCII input.
std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Returns the name after '$' and how many bytes it used (Go's getShellName).
// An empty name with a non-zero width means bad syntax: the bytes are eaten.
std::pair<std::string_view, size_t> GetShellName(std::string_view s) {
  if (s[0] == '{') {
    if (s.size() > 2 && IsShellSpecialVar(s[1]) && s[2] == '}') return {s.substr(1, 1), 3};
    for (size_t i = 1; i < s.size(); i++) {
      if (s[i] == '}') {
        if (i == 1) return {{}, 2};  // "${}"
        return {s.substr(1, i - 1), i + 1};
      }
    }
    return {{}, 1};  // unterminated "${"
  }
  if (IsShellSpecialVar(s[0])) return {s.substr(0, 1), 1};
  size_t i = 0;
  while (i < s.size() && IsWord(s[i])) i++;
  return {s.substr(0, i), i};
}

// Matches `^(\w+)\s*(==|!=)\s*(rest)$`; fills name, op ("==" or "!=") and rest.
bool MatchComparison(std::string_view v, std::string_view* name, bool* equal,
                     std::string_view* rest) {
  size_t i = 0;
  while (i < v.size() && IsWord(v[i])) i++;
  if (i == 0) return false;
  *name = v.substr(0, i);
  while (i < v.size() && IsRegexpSpace(v[i])) i++;
  if (i + 2 > v.size() || v[i + 1] != '=' || (v[i] != '=' && v[i] != '!')) return false;
  *equal = v[i] == '=';
  i += 2;
  while (i < v.size() && IsRegexpSpace(v[i])) i++;
  *rest = v.substr(i);
  return true;
}

bool IsQuoted(std::string_view s, char q) {
  if (s.size() < 2 || s.front() != q || s.back() != q) return false;
  // Go's '.' does not match a newline.
  return s.substr(1, s.size() - 2).find('\n') == std::string_view::npos;
}

bool AllWord(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsWord(c)) return false;
  }
  return true;
}

std::string Map(std::string_view raw, const EnvLookup& lookup) {
  std::string_view v = TrimSpace(raw);
  std::string_view name, rest;
  bool equal = false;
  if (MatchComparison(v, &name, &equal, &rest)) {
    const std::string left = lookup(std::string(name));
    std::string right;
    bool matched = true;
    if (IsQuoted(rest, '\'') || IsQuoted(rest, '"')) {
      right = std::string(rest.substr(1, rest.size() - 2));
    } else if (AllWord(rest)) {
      right = lookup(std::string(rest));
    } else {
      matched = false;
    }
    if (matched) return (left == right) == equal ? "true" : "false";
  }
  return lookup(std::string(v));
}

std::string GetenvLookup(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value ? value : "";
}

}  // namespace

std::string ExpandEnv(std::string_view s, const EnvLookup& lookup_in) {
  const EnvLookup& lookup = lookup_in ? lookup_in : EnvLookup(GetenvLookup);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  for (size_t j = 0; j < s.size(); j++) {
    if (s[j] != '$' || j + 1 >= s.size()) continue;
    out.append(s.substr(i, j - i));
    auto [name, width] = GetShellName(s.substr(j + 1));
    if (name.empty() && width > 0) {
      // Bad syntax: the characters are eaten.
    } else if (name.empty()) {
      out.push_back('$');  // '$' not followed by a name stays.
    } else {
      out += Map(name, lookup);
    }
    j += width;
    i = j + 1;
  }
  if (i < s.size()) out.append(s.substr(i));
  return out;
}

void EnsureHostnameEnv() {
  const char* current = std::getenv("HOSTNAME");
  if (current != nullptr && current[0] != '\0') return;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return;
  setenv("HOSTNAME", name, 1);
}

}  // namespace litefs
