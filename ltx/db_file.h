// The SQLite database file as LiteFS sees it: the fields of its 100-byte
// header that matter for replication, and its rolling checksum computed from
// the file (pages 1..page_count, lock page skipped; see checksum.h).
//
// Only the main database file is read: pages still in a -wal file are not
// included; the caller accounts for them.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ltx/status.h"

namespace litefs::ltx {

inline constexpr size_t kDbHeaderSize = 100;

struct DbHeader {
  uint32_t page_size;                   // offset 16; the stored value 1 means 65536
  uint32_t page_count;                  // "in-header database size", offset 28
  uint32_t change_counter;              // offset 24
  uint8_t write_version, read_version;  // offsets 18, 19 (1 = rollback, 2 = WAL)
  // SQLite trusts page_count only when it is nonzero and the change counter
  // equals the version-valid-for number at offset 92.
  bool page_count_valid;
};

// Parses the first 100 bytes of a database file: checks the
// "SQLite format 3\0" string and that the page size is a power of two in
// 512..65536.
Result<DbHeader> ParseDbHeader(std::span<const uint8_t> first100bytes);

// Rolling checksum of pages 1..page_count of the open file `fd` (not owned),
// read with pread in bounded chunks. A file shorter than page_count pages is
// an error.
Result<uint64_t> ChecksumDbFile(int fd, uint32_t page_size, uint32_t page_count);

// Opens `path` and checksums it: the page count comes from the header when it
// is valid, otherwise from the file size (which must then be a whole number of
// pages). An empty file is an empty database: kChecksumFlag.
Result<uint64_t> ChecksumDbPath(const std::string& path);

}  // namespace litefs::ltx
