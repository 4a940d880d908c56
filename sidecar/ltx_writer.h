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
#include "sidecar/db_view.h"
#include "sidecar/ltx_log.h"
#include "sidecar/page_checksums.h"
#include "vfs/commit_protocol.h"

namespace litefs {

struct LtxWriteOptions {
  bool compress = true;
  uint64_t node_id = 0;
  int64_t timestamp_ms = 0;
  bool sync = true;  // fdatasync the file and its directory entry
  // Transactions the file records, TXIDs prev+1..prev+transactions: WAL
  // commits captured together make one file, as LiteFS's compaction would.
  uint64_t transactions = 1;
  // Where a WAL transaction's frames were (LiteFS records them; 0 otherwise).
  int64_t wal_offset = 0, wal_size = 0;
  uint32_t wal_salt1 = 0, wal_salt2 = 0;
};

// Pages (of `page_size`, <= `commit`, not the lock page) that byte ranges
// written to a database file touch, sorted and unique.
std::vector<uint32_t> PagesTouched(const std::vector<wire::ByteRange>& ranges, uint32_t page_size,
                                   uint32_t commit);

// Writes TXID prev.txid+1 (through prev.txid+options.transactions) holding
// `pages` of `source` (nullptr: every page)
// and installs it in `log`. Every page is included anyway when prev is the
// zero position (the file is then a snapshot) or the page size changed; and
// pages of a grown database that the checksum table has never seen are
// added. A source with no pages makes a deletion marker (commit 0). Updates
// `checksums`; if this fails, `checksums` must be reloaded.
Result<ltx::Pos> WriteCommitLtx(PageSource& source, const std::vector<uint32_t>* pages,
                                ltx::Pos prev, PageChecksums& checksums, LtxLog& log,
                                const LtxWriteOptions& options);

struct SnapshotFile {
  std::string path;
  ltx::Header header;
  ltx::Trailer trailer;
};

// Writes a snapshot of `source` at position `pos` to `path`. The caller
// makes sure the source shows the database at `pos`; a checksum that does
// not match `pos` is an error.
Result<SnapshotFile> WriteSnapshotLtx(PageSource& source, ltx::Pos pos, const std::string& path,
                                      const LtxWriteOptions& options);

// Writes every page of `source` to `path` as TXID prev.txid+1 (a snapshot,
// TXID 1, when prev is the zero position), with the rolling checksum of
// those pages as post-apply checksum: a transaction that replaces the whole
// database (an import). The file is not installed in any log.
Result<SnapshotFile> WriteReplacementLtx(PageSource& source, ltx::Pos prev, const std::string& path,
                                         const LtxWriteOptions& options);

}  // namespace litefs
