// Writing LTX files from a database file, in the three ways the store needs:
//  - a commit captured on the primary (the pages in the written byte ranges,
//    or every page when there is no history to build on),
//  - a recovery file (every page: the database changed without a capture),
//  - a snapshot for a replica (TXID 1..current, every page).
// Pages are read from the database and streamed into the encoder, so memory
// stays bounded however large the transaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ltx/header.h"
#include "ltx/pos.h"
#include "ltx/status.h"
#include "sidecar/ltx_log.h"
#include "sidecar/page_checksums.h"
#include "vfs/commit_protocol.h"

namespace litefs {

struct LtxWriteOptions {
  bool compress = true;
  uint64_t node_id = 0;
  int64_t timestamp_ms = 0;
  bool sync = true;  // fdatasync the file and its directory entry
};

// Writes TXID prev.txid+1 from the committed database `db_fd` (-1: the file
// does not exist, which makes a deletion marker) and installs it in `log`. `ranges` are the bytes written by the transaction; with
// `all_pages` (or when prev is the zero position, which makes the file a
// snapshot) every page is included. Updates `checksums`; if this fails,
// `checksums` no longer matches the file and must be reloaded.
Result<ltx::Pos> WriteCommitLtx(int db_fd, const std::string& db_path,
                                const std::vector<wire::ByteRange>& ranges, bool all_pages,
                                ltx::Pos prev, PageChecksums& checksums, LtxLog& log,
                                const LtxWriteOptions& options);

struct SnapshotFile {
  std::string path;
  ltx::Header header;
  ltx::Trailer trailer;
};

// Writes a snapshot of `db_fd` at position `pos` to `path`. The caller holds
// a lock that keeps the database at `pos`; a checksum that does not match
// `pos` is an error (the database changed outside litefs).
Result<SnapshotFile> WriteSnapshotLtx(int db_fd, const std::string& db_path, ltx::Pos pos,
                                      const std::string& path, const LtxWriteOptions& options);

}  // namespace litefs
