// Request target splitting and query decoding (see request.h).
#include "proxy/http/request.h"

namespace litefs::http {
namespace {

// The path-and-query part of the target, or nullopt for forms without one.
std::optional<std::string_view> OriginPart(std::string_view target) {
  if (!target.empty() && target.front() == '/') return target;
  size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos || target.find_first_of("/?") < scheme_end) {
    return std::nullopt;  // asterisk-form or authority-form
  }
  size_t start = target.find_first_of("/?#", scheme_end + 3);
  if (start == std::string_view::npos) return std::string_view();
  return target.substr(start);
}

}  // namespace

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Request::path() const {
  std::optional<std::string_view> origin = OriginPart(target);
  if (!origin) return target;
  std::string_view p = origin->substr(0, origin->find_first_of("?#"));
  if (p.empty()) return "/";
  return p;
}

std::string_view Request::query() const {
  std::optional<std::string_view> origin = OriginPart(target);
  if (!origin) return {};
  size_t q = origin->find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = origin->substr(q + 1);
  return rest.substr(0, rest.find('#'));
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  std::string_view q = query();
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (!pair.empty() && PercentDecode(key, true) == name) {
      if (eq == std::string_view::npos) return std::string();
      return PercentDecode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

void Request::Clear() {
  method.clear();
  target.clear();
  http_major = 1;
  http_minor = 1;
  headers.clear();
  keep_alive = true;
  upgrade = false;
  // peer is a property of the connection and survives reuse on it.
}

std::string PercentDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexDigitValue(s[i + 1]);
      int lo = HexDigitValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

}  // namespace litefs::http
