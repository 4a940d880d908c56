// Read-your-writes token parsing and formatting (see txid_token.h).
#include "proxy/txid_token.h"

#include <cstdio>

#include "proxy/http/request.h"

namespace litefs::proxy {
namespace {

bool MustEscape(unsigned char c) {
  return c <= 0x20 || c >= 0x7f || c == '&' || c == '=' || c == '%' || c == '@' || c == ';' ||
         c == ',' || c == '"' || c == '\\';
}

std::string EscapeName(std::string_view name) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (unsigned char c : name) {
    if (MustEscape(c)) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<uint64_t> ParseHex16(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = http::HexDigitValue(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | uint64_t(d);
  }
  return v;
}

std::string FormatHex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, 16);
}

TxidToken ParseTxidToken(std::string_view text) {
  TxidToken token;
  text = Trim(text);
  // Entries are few; a bound keeps a hostile header from costing much.
  constexpr size_t kMaxEntries = 64;
  while (!text.empty() && token.entries.size() < kMaxEntries) {
    size_t amp = text.find('&');
    std::string_view entry = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (entry.empty()) continue;
    if (entry.front() == '@') {
      if (auto id = ParseHex16(entry.substr(1))) token.issuer = *id;
      continue;
    }
    size_t eq = entry.rfind('=');
    if (eq == std::string_view::npos) {
      if (auto txid = ParseHex16(entry)) token.entries.push_back({"", *txid});
      continue;
    }
    auto txid = ParseHex16(entry.substr(eq + 1));
    std::string db = http::PercentDecode(entry.substr(0, eq), false);
    if (!txid || db.empty()) continue;
    token.entries.push_back({std::move(db), *txid});
  }
  return token;
}

std::string FormatTxidToken(const TxidToken& token) {
  std::string out;
  for (const TxidToken::Entry& e : token.entries) {
    if (!out.empty()) out.push_back('&');
    if (!e.db.empty()) {
      out += EscapeName(e.db);
      out.push_back('=');
    }
    out += FormatHex16(e.txid);
  }
  if (token.issuer) {
    if (!out.empty()) out.push_back('&');
    out.push_back('@');
    out += FormatHex16(*token.issuer);
  }
  return out;
}

std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = Trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = Trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return std::nullopt;
}

}  // namespace litefs::proxy
