// CRC-64/ISO with a slicing-by-8 table (eight bytes per step), equal to Go's
// hash/crc64 with crc64.ISO. The tables are built at compile time.
#include "ltx/checksum.h"

#include <array>
#include <cstring>

#include "ltx/io.h"

namespace litefs::ltx {
namespace {

constexpr uint64_t kIsoPolyReflected = 0xD800000000000000ull;

using SlicingTables = std::array<std::array<uint64_t, 256>, 8>;

constexpr SlicingTables MakeTables() {
  SlicingTables t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ kIsoPolyReflected : crc >> 1;
    t[0][i] = crc;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (size_t k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}

constexpr SlicingTables kTables = MakeTables();

inline uint64_t LoadLE64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

}  // namespace

uint64_t Crc64(uint64_t crc, std::span<const uint8_t> data) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  crc = ~crc;
  while (n >= 8) {
    crc ^= LoadLE64(p);
    crc = kTables[7][crc & 0xff] ^ kTables[6][(crc >> 8) & 0xff] ^ kTables[5][(crc >> 16) & 0xff] ^
          kTables[4][(crc >> 24) & 0xff] ^ kTables[3][(crc >> 32) & 0xff] ^
          kTables[2][(crc >> 40) & 0xff] ^ kTables[1][(crc >> 48) & 0xff] ^ kTables[0][crc >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = kTables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint64_t PageChecksum(uint32_t pgno, std::span<const uint8_t> page) {
  uint8_t pgno_be[4];
  io::StoreBE32(pgno_be, pgno);
  return Crc64(Crc64(0, pgno_be), page) | kChecksumFlag;
}

}  // namespace litefs::ltx
