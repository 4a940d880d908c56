// Text forms of TXIDs, positions and LTX file names (see pos.h).
#include "ltx/pos.h"

#include <cstdio>

namespace litefs::ltx {
namespace {

constexpr size_t kHexWidth = 16;

std::string Hex16(uint64_t v) {
  char buf[kHexWidth + 1];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, kHexWidth);
}

int HexValue(char c, bool allow_upper) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (allow_upper && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly 16 hex digits. Upper case is accepted where LiteFS's Go parser
// (strconv.ParseUint) accepts it, and refused in file names (its regexp).
std::optional<uint64_t> ParseHex16(std::string_view s, bool allow_upper) {
  if (s.size() != kHexWidth) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = HexValue(c, allow_upper);
    if (d < 0) return std::nullopt;
    v = v << 4 | uint64_t(d);
  }
  return v;
}

}  // namespace

std::string FormatTXID(uint64_t txid) { return Hex16(txid); }

std::optional<uint64_t> ParseTXID(std::string_view s) { return ParseHex16(s, true); }

std::string FormatChecksum(uint64_t checksum) { return Hex16(checksum); }

std::string FormatPos(const Pos& pos) { return Hex16(pos.txid) + "/" + Hex16(pos.checksum); }

std::optional<Pos> ParsePos(std::string_view s) {
  if (s.size() != 2 * kHexWidth + 1 || s[kHexWidth] != '/') return std::nullopt;
  std::optional<uint64_t> txid = ParseHex16(s.substr(0, kHexWidth), true);
  std::optional<uint64_t> checksum = ParseHex16(s.substr(kHexWidth + 1), true);
  if (!txid || !checksum) return std::nullopt;
  return Pos{*txid, *checksum};
}

std::string FormatFileName(uint64_t min_txid, uint64_t max_txid) {
  return Hex16(min_txid) + "-" + Hex16(max_txid) + ".ltx";
}

std::optional<TXIDRange> ParseFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".ltx";
  if (name.size() != 2 * kHexWidth + 1 + kSuffix.size() || name[kHexWidth] != '-' ||
      name.substr(2 * kHexWidth + 1) != kSuffix) {
    return std::nullopt;
  }
  std::optional<uint64_t> min_txid = ParseHex16(name.substr(0, kHexWidth), false);
  std::optional<uint64_t> max_txid = ParseHex16(name.substr(kHexWidth + 1, kHexWidth), false);
  if (!min_txid || !max_txid) return std::nullopt;
  return TXIDRange{*min_txid, *max_txid};
}

}  // namespace litefs::ltx
