// Keeps replica WAL files short. Nobody writes on a replica, so no SQLite
// connection ever runs the auto-checkpoint there: after applies have
// appended kReplicaCheckpointFrames frames, the database's strand runs
// SQLite's own PASSIVE checkpoint (which honours every reader's read mark,
// and syncs the WAL before and the database after copying), and the next
// apply starts the WAL over if every frame was copied.
//
// It runs in this process, between applies of the same database, so no
// apply waits behind a process start. SQLite's POSIX locks and the
// sidecar's OFD locks do not conflict here: the sidecar holds only read
// locks on the files meanwhile (the strand serialises applies and recovery
// with it), and the one other job that opens these files, a snapshot or
// export on the database's second strand, excludes it (Database's
// `sqlite_files_mu_`), since closing any descriptor of a file drops every
// POSIX lock the process holds on it (sqlite-internals §1.3).
#pragma once

#include <cstdint>
#include <string>

#include "ltx/status.h"

namespace litefs {

inline constexpr uint32_t kReplicaCheckpointFrames = 1000;  // SQLite's wal_autocheckpoint default

// Returns whether every frame is now in the database file.
Result<bool> CheckpointReplicaWal(const std::string& db_path);

}  // namespace litefs
