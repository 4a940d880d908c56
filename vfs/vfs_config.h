// Where liblitefs.so looks: the managed directory from LITEFS_DIR (resolved
// to a real path) and the sidecar socket, `$LITEFS_DIR/.litefs.sock` unless
// LITEFS_SOCKET overrides it; LITEFS_WAIT_FOR_CAPTURE=1 makes WAL commits
// wait until the sidecar recorded them. Read once from the environment.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace litefs::vfs {

struct VfsConfig {
  std::string dir;          // real path of the managed directory, no trailing '/'
  std::string socket_path;  // the sidecar's commit socket
  // WAL commits wait for the sidecar (so `<db>-pos` names them when COMMIT
  // returns) instead of being captured from the WAL just after.
  bool wait_for_capture = false;
};

// nullopt when LITEFS_DIR is unset or does not name a directory (the library
// then stays inactive and logs why once).
const std::optional<VfsConfig>& GetVfsConfig();

// If `path` (a full path from SQLite) names a database directly inside
// `dir`, returns its name; otherwise nullopt. Names of SQLite's own side
// files and of LiteFS's control files (-journal, -wal, -shm, -pos, -lock)
// are never database names.
std::optional<std::string> ManagedDbName(const VfsConfig& config, std::string_view path);

}  // namespace litefs::vfs
