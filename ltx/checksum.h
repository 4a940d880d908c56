// CRC-64/ISO as Go's hash/crc64 computes it, and the LiteFS checksums built on
// it: page checksums and the rolling database checksum (XOR of page checksums).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace litefs::ltx {

// Bit 63 is forced on in every stored checksum; 0 means "no checksum".
inline constexpr uint64_t kChecksumFlag = uint64_t(1) << 63;

// Continues a CRC-64/ISO (reflected poly 0xD800000000000000, init and final
// xor all ones) over `data`; Crc64(0, "123456789") == 0xb90956c775a41001.
uint64_t Crc64(uint64_t crc, std::span<const uint8_t> data);

// CRC64(pgno as 4-byte BE || page) | kChecksumFlag.
uint64_t PageChecksum(uint32_t pgno, std::span<const uint8_t> page);

// The page holding byte offset 0x40000000; it never holds data and never
// counts in a database checksum or appears in an LTX file.
inline uint32_t LockPgno(uint32_t page_size) { return uint32_t(0x40000000u / page_size) + 1; }

// Rolling database checksum: XOR of page checksums with the flag set. An
// empty database (no pages) has checksum kChecksumFlag.
class RollingChecksum {
 public:
  void Toggle(uint64_t page_checksum) { acc_ ^= page_checksum; }
  uint64_t value() const { return acc_ | kChecksumFlag; }

 private:
  uint64_t acc_ = 0;
};

}  // namespace litefs::ltx
