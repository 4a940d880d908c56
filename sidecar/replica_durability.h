// Replica applies are not synced one by one. A replica's state can always
// be rebuilt from its primary, and three syncs per transaction (the LTX,
// its directory entry, the WAL) cap a replica on a real disk at a few
// hundred transactions per second, far behind a primary that does not sync
// (WAL + synchronous=NORMAL). What stays true without them:
//
//  - a crash of the sidecar loses nothing (the page cache survives it);
//  - a power failure cannot tear a WAL-mode replica: frames are appended
//    behind SQLite's checksums, and the database file is only written by
//    checkpoints, which sync the WAL first and the database before the WAL
//    restarts. It may lose the last applies: the database is then behind its
//    LTX log, and recovery (Database::RecoverJob) goes back to the file whose
//    checksum matches the database, drops the rest of the history, and the
//    stream brings the replica forward again;
//  - rollback-mode applies still sync their journal and the database (a
//    torn page without a durable journal could not be undone).
//
// The marker file `<data-dir>/dbs/<db>/applies-unsynced` is made durable
// before the first unsynced apply; recovery only goes back in the log when it
// exists, so a database changed behind the sidecar's back is still recorded
// as a new transaction, never silently undone. Becoming the primary syncs the
// file systems and removes the marker: what the node serves as primary is
// durable.
//
// While a replica database is in WAL mode the sidecar also keeps it in use,
// like a long-lived reader: a SHARED lock on the database and a shared lock
// on the wal-index's DMS byte. No closing connection (an app's, or the
// checkpointer's) can then take EXCLUSIVE to checkpoint with syncs and
// delete the WAL and -shm under the applies, and no apply finds the index
// unused and has to fold the WAL into the database (another sync).
#pragma once

#include <string>

#include "ltx/status.h"
#include "sidecar/durability_marker.h"
#include "sidecar/fsutil.h"

namespace litefs {

class ReplicaDurability {
 public:
  ReplicaDurability(std::string marker_path, std::string db_path)
      : marker_(std::move(marker_path)), db_path_(std::move(db_path)) {}

  // Before an unsynced apply: the marker is durable once this returns.
  Status BeforeUnsyncedApply();
  // Whether unsynced applies may have happened since the last sync.
  bool Marked() const;

  // After a WAL apply; idempotent. Failures only cost a sync later.
  void HoldWal();
  // Before an apply that needs EXCLUSIVE (rollback mode) or deletes the files.
  void ReleaseWal();

  // Syncs what was applied (the file systems holding the database and
  // `ltx_dir`) and removes the marker.
  Status MakeDurable(const std::string& ltx_dir);

 private:
  DurabilityMarker marker_;
  std::string db_path_;
  bool marked_ = false;  // known durable in this process
  fs::UniqueFd db_hold_;         // SHARED range read-locked
  fs::UniqueFd wal_index_hold_;  // DMS byte read-locked
};

}  // namespace litefs
