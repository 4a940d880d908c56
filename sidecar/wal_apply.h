// Applies a verified LTX file to a WAL-mode replica database the way a
// SQLite writer commits (sqlite-internals §4.9): append its pages to the
// `-wal` as one transaction ending in a commit frame, sync, add the frames
// to the wal-index hash tables, then publish a new wal-index header.
//
// Readers in other processes are never blocked (they keep their snapshot
// until their next read transaction, which sees the whole transaction), and
// a crash at any point leaves either an unpublished tail (invisible, and
// overwritten by the next apply) or a complete commit frame that SQLite's
// WAL recovery accepts: no reader ever sees a torn transaction.
//
// Locks held meanwhile (OFD): SHARED on the database (no connection can
// reach EXCLUSIVE to checkpoint-and-delete the WAL on close), DMS shared on
// the -shm (nobody resets the wal-index), WRITE (no other writer, recovery
// or restart). If no process has the -shm open, the wal-index is rebuilt
// from the WAL first, as SQLite's own recovery would.
#pragma once

#include <span>
#include <string>

#include "ltx/status.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/page_checksums.h"

namespace litefs {

// Applies several verified files, consecutive transactions of the database,
// under one set of locks: each is its own transaction in the WAL, and one
// wal-index header publishes them together. Returns the number of frames in
// the WAL afterwards; `applied` says how many files went in — on an error,
// those before the failing file are applied and published.
Result<uint32_t> ApplyLtxBatchToWal(const std::string& db_path, std::span<const LtxApplyItem> items,
                                    PageChecksums& checksums, const ApplyOptions& options, size_t& applied);

// One file. Returns the number of frames in the WAL afterwards (for checkpointing).
Result<uint32_t> ApplyLtxToWal(const std::string& db_path, const std::string& ltx_path,
                               const VerifiedLtx& ltx, PageChecksums& checksums,
                               const ApplyOptions& options);

// Recovery's part: if a transaction was written completely to the WAL but
// its writer (an earlier apply, or an app's SQLite) died before publishing
// it in the wal-index, publish it now — what SQLite's own recovery would do
// once no process held the -shm — so that what readers see matches the WAL
// file the position is computed from. Does nothing without a -shm in use,
// or when another writer holds the WAL write lock (it will overwrite the
// unpublished frames itself).
Status PublishPendingWal(const std::string& db_path);

}  // namespace litefs
