// The "litefs" VFS: a shim over the default VFS (normally "unix").
//
// Files that are not databases directly inside the managed directory go
// straight to the underlying VFS: their sqlite3_file *is* the underlying
// one, with its own method table, so they pay nothing. Managed database
// files get the capture methods of db_file.h.
#pragma once

#include "ltx/status.h"
#include "vfs/sqlite_api.h"
#include "vfs/vfs_config.h"

namespace litefs::vfs {

inline constexpr const char* kVfsName = "litefs";

// Registers the VFS as the default of the SQLite copy `api` belongs to
// (once per copy: a process may hold several). `config` must outlive it.
Status RegisterLitefsVfs(const SqliteApi& api, const VfsConfig& config);

}  // namespace litefs::vfs
