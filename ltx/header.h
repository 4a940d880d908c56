// LTX v1 header (100 bytes) and trailer (16 bytes), as superfly/ltx v0.3.14
// writes them. All integers big-endian.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "ltx/status.h"

namespace litefs::ltx {

inline constexpr size_t kHeaderSize = 100;
inline constexpr size_t kTrailerSize = 16;
inline constexpr size_t kPageHeaderSize = 4;  // page number before each page
inline constexpr uint32_t kFlagCompressLZ4 = 0x1;

struct Header {
  uint32_t flags = 0;
  uint32_t page_size = 0;
  uint32_t commit = 0;  // database size in pages after this file is applied
  uint64_t min_txid = 0;
  uint64_t max_txid = 0;
  int64_t timestamp_ms = 0;
  uint64_t pre_apply_checksum = 0;
  int64_t wal_offset = 0;
  int64_t wal_size = 0;
  uint32_t wal_salt1 = 0;
  uint32_t wal_salt2 = 0;
  uint64_t node_id = 0;

  bool IsSnapshot() const { return min_txid == 1; }
  bool Compressed() const { return flags & kFlagCompressLZ4; }

  // The rules of ltx.Header.Validate: known flags only, page size a power of
  // two in 512..65536, min/max TXID set and ordered, pre-apply checksum zero
  // for snapshots and flagged otherwise, WAL fields consistent.
  Status Validate() const;

  std::array<uint8_t, kHeaderSize> Encode() const;
  // Parses and validates; the error names the bad field.
  static Result<Header> Decode(std::span<const uint8_t> bytes);
};

struct Trailer {
  uint64_t post_apply_checksum = 0;
  uint64_t file_checksum = 0;

  std::array<uint8_t, kTrailerSize> Encode() const;
  static Trailer Decode(std::span<const uint8_t> bytes);
};

}  // namespace litefs::ltx
