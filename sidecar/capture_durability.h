// A primary's LTX files are written without a sync whenever the transaction
// has another durable record until the file reaches the disk:
//
//  - a WAL commit: its frames stay in the WAL, synced by the app when it
//    asked for it (synchronous=FULL), until SQLite restarts, truncates or
//    deletes the WAL — and before any of those the VFS has the sidecar
//    capture the WAL (a flush), which syncs the files (MakeDurable). Recovery
//    records the frames after the last intact file again: the same pages in
//    the same order, so the same TXIDs and checksums;
//  - a rollback-mode commit the app synced: a copy of its file is appended
//    to the capture log and synced there (capture_log.h) — one flush of
//    data only, where a new file costs two that carry metadata. Recovery
//    writes the copies that continue the intact files back into the log;
//    once the file system is synced, the copies are forgotten. A file too
//    large for the space left in the log is made durable by that sync.
//    A commit the app did not wait for (vfs/db_file.cc) defers the copy's
//    flush when the log shares a device with the database: the copy is
//    written to the device before the next transaction may overwrite the
//    commit's pages, so that transaction's own flush of the database, before
//    its COMMIT returns, makes the copy durable — as SQLite's next commit is
//    what makes a rollback-mode commit durable at synchronous=FULL (its
//    journal's deletion is not synced). An idle database flushes the log
//    itself (FlushCopies) shortly after;
//  - a commit the app did not sync (synchronous=OFF in a rollback journal
//    mode): a power failure may lose it from the database too.
//
// A crash of the sidecar loses nothing (the page cache survives it). A
// power failure may tear or lose any file written since the last sync, not
// only the newest. The marker `<data-dir>/dbs/<db>/ltx-unsynced`, made
// durable before the first unsynced file and naming its TXID, tells recovery
// which files to verify: the first that fails (or breaks the chain of
// checksums) and every later one are dropped, the capture log's copies
// bring back those it holds, and the comparison with the database records
// what is still missing again (Database::RecoverJob).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "sidecar/capture_log.h"
#include "sidecar/durability_marker.h"

namespace litefs {

class CaptureDurability {
 public:
  CaptureDurability(std::string marker_path, std::string capture_log_path)
      : marker_(std::move(marker_path)), copies_(std::move(capture_log_path)) {}

  // Before writing TXID `first_txid` unsynced: the marker is durable (and
  // names the first such TXID since the last sync) once this returns.
  Status BeforeUnsynced(uint64_t first_txid);
  // The first TXID written unsynced since the last sync, from the marker on
  // disk; nullopt when every file is durable.
  std::optional<uint64_t> UnsyncedFrom() const;
  // Makes the unsynced file at `ltx_path` (a rollback-mode commit the app
  // synced) durable: a copy in the capture log, or, when the log is full,
  // a sync of everything (MakeDurable).
  // With `defer_flush`, the copy is only written to the device (see above;
  // the caller makes sure the log shares it with the database).
  Status KeepDurable(const std::string& ltx_path, const std::string& ltx_dir, bool defer_flush = false);
  // Makes the copies whose flush was deferred durable.
  Status FlushCopies() { return copies_.Flush(); }
  // The capture log's copies, oldest first, for recovery.
  Result<std::vector<std::string>> Copies() { return copies_.Copies(); }
  // Syncs the file system holding `ltx_dir`, forgets the copies and removes
  // the marker. Cheap when nothing is unsynced.
  Status MakeDurable(const std::string& ltx_dir);

 private:
  DurabilityMarker marker_;
  CaptureLog copies_;
  std::optional<bool> marked_;  // unknown until first asked
};

}  // namespace litefs
