// TXID and position (TXID + post-apply checksum) and their text forms, as
// LiteFS prints them: TXID = 16 lowercase hex digits, position
// "<txid16>/<checksum16>", LTX file name "<min16>-<max16>.ltx".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace litefs::ltx {

struct Pos {
  uint64_t txid = 0;
  uint64_t checksum = 0;  // post-apply checksum of the database at txid
  bool IsZero() const { return txid == 0 && checksum == 0; }
  bool operator==(const Pos&) const = default;
};

std::string FormatTXID(uint64_t txid);              // "%016x"
std::optional<uint64_t> ParseTXID(std::string_view);  // exactly 16 hex digits, any case
std::string FormatChecksum(uint64_t checksum);      // "%016x"
std::string FormatPos(const Pos& pos);              // "<txid>/<checksum>"
std::optional<Pos> ParsePos(std::string_view);       // exactly that form, any case

// "<min16>-<max16>.ltx"; ParseFileName accepts only exactly that form, lowercase
// (the file names LiteFS recognises).
std::string FormatFileName(uint64_t min_txid, uint64_t max_txid);
struct TXIDRange {
  uint64_t min_txid = 0, max_txid = 0;
};
std::optional<TXIDRange> ParseFileName(std::string_view name);

}  // namespace litefs::ltx
