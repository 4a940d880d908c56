// SQLite's write-ahead log file (`<db>-wal`, sqlite-internals §4.1–4.3):
// the 32-byte header, 24-byte frame headers, the cumulative checksum, and a
// scan that finds the committed frames — those up to the last valid commit
// frame whose salts match the header and whose checksums chain, which is
// exactly what SQLite's own WAL recovery would accept.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ltx/status.h"

namespace litefs::wal {

inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr uint32_t kMagicLE = 0x377f0682;  // checksum words read little-endian
inline constexpr uint32_t kMagicBE = 0x377f0683;
inline constexpr uint32_t kFormatVersion = 3007000;

struct Checksum {
  uint32_t s0 = 0, s1 = 0;
  bool operator==(const Checksum&) const = default;
};

// Continues `c` over `data` (a multiple of 8 bytes), words in the byte order
// chosen by the WAL magic.
Checksum Update(Checksum c, std::span<const uint8_t> data, bool big_endian);

struct Header {
  uint32_t magic = kMagicLE;
  uint32_t version = kFormatVersion;
  uint32_t page_size = 0;
  uint32_t checkpoint_seq = 0;
  uint32_t salt1 = 0, salt2 = 0;
  Checksum checksum;  // over bytes 0..23

  bool big_endian() const { return magic == kMagicBE; }
  // Parses and checks magic, version, page size and the header checksum.
  static Result<Header> Decode(std::span<const uint8_t> bytes);
  // Encodes with a freshly computed checksum.
  void Encode(uint8_t out[kHeaderSize]) const;
};

struct FrameHeader {
  uint32_t pgno = 0;
  uint32_t commit = 0;  // database size in pages on a commit frame, else 0
  uint32_t salt1 = 0, salt2 = 0;
  Checksum checksum;
  static FrameHeader Decode(const uint8_t bytes[kFrameHeaderSize]);
  void Encode(uint8_t out[kFrameHeaderSize]) const;
};

// Byte offset of frame `n` (1-based).
inline uint64_t FrameOffset(uint32_t n, uint32_t page_size) {
  return kHeaderSize + uint64_t(n - 1) * (kFrameHeaderSize + page_size);
}

// The committed content of a WAL file.
struct Committed {
  Header header;
  uint32_t last_frame = 0;   // index of the last valid commit frame; 0 = none
  uint32_t db_pages = 0;     // commit field of that frame
  Checksum checksum;         // running checksum after that frame
  std::unordered_map<uint32_t, uint32_t> frames;  // pgno -> latest committed frame
};

// The committed frames that follow frame `after` (0: from the start), given
// the running checksum and salts at that point: their page numbers in frame
// order up to the last valid commit frame, what that frame commits, and the
// checksum after it. Empty (last_frame == after) when none follows.
struct Tail {
  uint32_t last_frame = 0;
  uint32_t db_pages = 0;
  Checksum checksum;
  std::vector<uint32_t> pgnos;  // of frames after+1 .. last_frame
};
Result<Tail> ScanTail(int fd, uint32_t page_size, uint32_t after, Checksum checksum,
                      uint32_t salt1, uint32_t salt2, bool big_endian);

// Scans `fd` (the WAL) from the start. A missing or short header means an
// empty WAL (last_frame 0, header page_size 0). If `stop_after` is non-zero
// the scan stops after that frame (used to view a WAL as of a position).
Result<Committed> ScanCommitted(int fd, uint32_t stop_after = 0);

}  // namespace litefs::wal
