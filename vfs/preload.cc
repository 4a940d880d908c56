// LD_PRELOAD entry points: sqlite3_open, sqlite3_open_v2 and sqlite3_open16
// are interposed so that the litefs VFS is registered lazily, at the first
// open — never from a constructor, which would initialise SQLite before the
// application's own sqlite3_config() calls (sqlite-internals reference §6.2).
#include <sqlite3.h>

#include <cstdio>
#include <mutex>

#include "vfs/litefs_vfs.h"
#include "vfs/sqlite_api.h"
#include "vfs/vfs_config.h"
#include "vfs/vfs_log.h"

#define LITEFS_EXPORT extern "C" __attribute__((visibility("default")))

namespace litefs::vfs {
namespace {

// Finds the real SQLite and registers the VFS once. Returns nullptr only if
// no SQLite is loaded at all, which cannot happen for a real caller.
const SqliteApi* EnsureVfs() {
  static std::once_flag once;
  static const SqliteApi* api = nullptr;
  std::call_once(once, [] {
    api = PreloadSqliteApi();
    if (!api) {
      fprintf(stderr, "litefs: cannot find the SQLite library of this process\n");
      return;
    }
    SetSqliteLog(api->log);
    if (const std::optional<VfsConfig>& config = GetVfsConfig()) {
      Status st = RegisterLitefsVfs(*api, *config);
      if (!st.ok()) LogWarning(SQLITE_WARNING, "VFS not registered: %s", st.message().c_str());
    }
  });
  return api;
}

}  // namespace
}  // namespace litefs::vfs

LITEFS_EXPORT int sqlite3_open(const char* filename, sqlite3** db) {
  const auto* api = litefs::vfs::EnsureVfs();
  if (!api) return SQLITE_ERROR;
  return api->open(filename, db);
}

LITEFS_EXPORT int sqlite3_open_v2(const char* filename, sqlite3** db, int flags, const char* vfs) {
  const auto* api = litefs::vfs::EnsureVfs();
  if (!api) return SQLITE_ERROR;
  return api->open_v2(filename, db, flags, vfs);
}

LITEFS_EXPORT int sqlite3_open16(const void* filename, sqlite3** db) {
  const auto* api = litefs::vfs::EnsureVfs();
  if (!api) return SQLITE_ERROR;
  return api->open16(filename, db);
}
