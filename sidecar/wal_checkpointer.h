// Keeps replica WAL files short. Nobody writes on a replica, so no SQLite
// connection ever runs the auto-checkpoint there; after applies have
// appended enough frames, the sidecar runs SQLite's own PASSIVE checkpoint
// (which honours every reader's read mark) in a child process — a fresh
// process, so SQLite's POSIX locks never mix with the sidecar's OFD locks.
#pragma once

#include <uv.h>

#include <functional>
#include <set>
#include <string>

namespace litefs {

inline constexpr uint32_t kReplicaCheckpointFrames = 1000;  // SQLite's wal_autocheckpoint default

class WalCheckpointer {
 public:
  explicit WalCheckpointer(uv_loop_t* loop) : loop_(loop) {}

  // Starts `litefs internal-checkpoint <db_path>` unless one runs for it.
  void Run(const std::string& db_path);

  // The child's side: checkpoints `db_path` and returns an exit status.
  static int CheckpointMain(const std::string& db_path);

 private:
  uv_loop_t* loop_;
  std::set<std::string> running_;
};

}  // namespace litefs
