// See replica_durability.h.
#include "sidecar/replica_durability.h"

#include <fcntl.h>
#include <unistd.h>

#include "sidecar/sqlite_locks.h"

namespace litefs {

Status ReplicaDurability::BeforeUnsyncedApply() {
  if (marked_) return Status();
  LITEFS_RETURN_IF_ERROR(marker_.Place("replica applies since this file was written may not be on disk yet\n"));
  marked_ = true;
  return Status();
}

bool ReplicaDurability::Marked() const { return marked_ || marker_.Exists(); }

void ReplicaDurability::HoldWal() {
  if (!db_hold_.valid()) {
    Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY | O_CLOEXEC);
    if (!fd.ok()) return;
    Result<bool> held = sqlite::TryLock(fd->get(), F_RDLCK, sqlite::kSharedFirst, sqlite::kSharedSize);
    if (!held.ok() || !*held) return;
    db_hold_ = std::move(fd).value();
  }
  if (!wal_index_hold_.valid()) {
    Result<fs::UniqueFd> fd = fs::Open(db_path_ + "-shm", O_RDWR | O_CLOEXEC);
    if (!fd.ok()) return;
    Result<bool> held = sqlite::TryLock(fd->get(), F_RDLCK, sqlite::kShmDmsByte, 1);
    if (held.ok() && *held) wal_index_hold_ = std::move(fd).value();
  }
}

void ReplicaDurability::ReleaseWal() {
  wal_index_hold_.Reset();
  db_hold_.Reset();
}

Status ReplicaDurability::MakeDurable(const std::string& ltx_dir) {
  ReleaseWal();
  if (!Marked()) return Status();
  LITEFS_RETURN_IF_ERROR(marker_.SyncAndRemove({ltx_dir, fs::Dirname(db_path_)}));
  marked_ = false;
  return Status();
}

}  // namespace litefs
