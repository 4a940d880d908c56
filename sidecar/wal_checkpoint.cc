// See wal_checkpoint.h.
#include "sidecar/wal_checkpoint.h"

#include <sqlite3.h>

namespace litefs {

Result<bool> CheckpointReplicaWal(const std::string& db_path) {
  sqlite3* db = nullptr;
  // Plain SQLite ("unix"), never a VFS registered in this process.
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, "unix");
  int log_frames = 0, copied = 0;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 100);
    // A connection opens the WAL at its first read; until then it is not in
    // WAL mode and a checkpoint does nothing.
    rc = sqlite3_exec(db, "PRAGMA schema_version", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
    }
  }
  Status st;
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    st = Status::Error("checkpoint of " + db_path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  // Cannot take EXCLUSIVE (the sidecar holds SHARED), so it neither
  // checkpoints again nor deletes the WAL.
  sqlite3_close(db);
  if (!st.ok()) return st;
  return rc == SQLITE_OK && copied == log_frames;
}

}  // namespace litefs
