// Applies a verified LTX file to a rollback-mode replica database while app
// processes keep reading it (DESIGN.md §4, sqlite-internals §1.4, §4.9):
//
//  1. take SQLite's EXCLUSIVE lock from outside (RESERVED, PENDING, then the
//     SHARED range once current readers finish: new readers wait in their
//     busy handler, so each sees the whole transaction or none of it);
//  2. write a hot rollback journal holding the original content of every
//     page about to change (and of pages a shrink cuts off), and sync it;
//  3. write the new pages, set the file length, sync;
//  4. zero the journal's header (the commit point; the file is kept for the
//     next apply, see rollback_journal.h) and release the locks.
// A crash between 2 and 4 leaves a hot journal that the next reader rolls
// back: nobody ever sees a torn database. Readers notice the change because
// page 1 (always part of a rollback-mode transaction) carries a new change
// counter.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ltx/decoder.h"
#include "ltx/header.h"
#include "ltx/io.h"
#include "ltx/status.h"
#include "sidecar/fsutil.h"
#include "sidecar/ltx_log.h"
#include "sidecar/page_checksums.h"

namespace litefs {

struct ApplyOptions {
  std::chrono::milliseconds lock_timeout{10000};
  // WAL mode: fdatasync the WAL before publishing the transaction. Replica
  // applies do not (replica_durability.h); rollback-mode applies always sync
  // their journal and the database, whatever this says.
  bool sync_wal = true;
  // WAL mode, on a primary (an import): once the write lock is held, the
  // WAL must hold no committed frame after this one (an empty WAL is fine) —
  // otherwise an app committed frames the sidecar has not captured yet, and
  // the apply fails without writing (IsUncapturedWal) so that they can be
  // captured first.
  struct WalEnd {
    uint32_t salt1 = 0, salt2 = 0, frame = 0;
  };
  std::optional<WalEnd> expect_wal_end = std::nullopt;
  // Rollback mode, on a primary (an import): once the lock is held, the
  // database header's change counter must be this one — otherwise an app
  // committed after the last capture (a commit handed over without
  // waiting), and the apply fails without writing (IsUncapturedRollbackCommit).
  std::optional<uint32_t> expect_change_counter = std::nullopt;
  // Rollback mode, for tests: called with the journal hot and the database
  // written and synced, right before the commit point.
  std::function<void()> before_commit_point = nullptr;
};

// The apply found WAL frames committed after `expect_wal_end`.
bool IsUncapturedWal(const Status& st);
// The apply found a change counter other than `expect_change_counter`.
bool IsUncapturedRollbackCommit(const Status& st);

// An LTX file read through once: every check of the decoder passed (header,
// page order, checksums) and its page numbers are known.
struct VerifiedLtx {
  ltx::Header header;
  ltx::Trailer trailer;
  std::vector<uint32_t> pgnos;
  // The content, when it was verified in memory (a small received file):
  // the apply then reads the pages from here, not from the file.
  LtxBytes bytes;
};
Result<VerifiedLtx> ReadAndVerifyLtx(const std::string& ltx_path);

// A file received from the primary and not in the log yet: in memory when
// small (up to LtxLog::kRememberedFileSize), else in a temporary file.
struct ReceivedLtx {
  std::string tmp_path;  // empty when in memory
  LtxBytes bytes;
};
Result<VerifiedLtx> VerifyReceivedLtx(const ReceivedLtx& received);

// An LTX file opened for its pages, from memory or from disk.
struct LtxContent {
  fs::UniqueFd fd;
  std::unique_ptr<io::Reader> reader;
  std::unique_ptr<ltx::Decoder> decoder;
};
// `bytes` when set, else the file at `path`.
Result<std::unique_ptr<LtxContent>> OpenLtxContent(const std::string& path, const LtxBytes& bytes);

// A verified file and where it is, one of a run applied together.
struct LtxApplyItem {
  const std::string* ltx_path;
  const VerifiedLtx* ltx;
};

// Applies the verified file at `ltx_path` to the database at `db_path` and
// brings `checksums` up to date. Fails if the result would not have the
// file's post-apply checksum (the replica had diverged); that is checked
// before the commit point and the apply is rolled back. On failure the
// database is either untouched or left with a hot journal (the next reader
// rolls it back); `checksums` must be reloaded.
Status ApplyVerifiedLtx(const std::string& db_path, const std::string& ltx_path,
                        const VerifiedLtx& ltx, PageChecksums& checksums,
                        const ApplyOptions& options);

// Applies several verified files — consecutive transactions, none a
// snapshot or a deletion — as one rollback-mode transaction: one journal
// and one set of syncs for them all, and readers see all of them or none.
// A replica that fell behind catches up with fewer syncs per transaction
// (group commit). Otherwise as ApplyVerifiedLtx, checked against the last
// file's post-apply checksum.
Status ApplyVerifiedLtxRun(const std::string& db_path, std::span<const LtxApplyItem> items,
                           PageChecksums& checksums, const ApplyOptions& options);

// Whether applies to `db_path` go to its WAL: it has a -wal file, or its
// header says WAL mode.
bool IsWalDatabase(const std::string& db_path);

// Applies the verified file the way readers of `db_path` expect: appended to
// the WAL when the database is in WAL mode or has a -wal file (connections
// then read through the WAL, see wal_apply.h), else in place with a
// rollback journal. Returns the frames now in the WAL (0 in rollback mode).
Result<uint32_t> ApplyToDatabase(const std::string& db_path, const std::string& ltx_path,
                                 const VerifiedLtx& ltx, PageChecksums& checksums,
                                 const ApplyOptions& options);

}  // namespace litefs
