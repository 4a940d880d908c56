// The two ways to register the VFS besides LD_PRELOAD (preload.cc):
//  - sqlite3_litefs_init: the loadable-extension entry point SQLite derives
//    from "liblitefs.so" (sqlite-internals §6.4); it stays loaded
//    (SQLITE_OK_LOAD_PERMANENTLY) because the VFS outlives the connection;
//  - litefs_register_vfs: the C API of litefs.h, for statically linked
//    SQLite.
#include "vfs/litefs.h"

#include <sqlite3ext.h>  // after litefs.h: its macros would rewrite litefs_register()

#include "vfs/litefs_vfs.h"
#include "vfs/sqlite_api.h"
#include "vfs/vfs_config.h"
#include "vfs/vfs_log.h"

#define LITEFS_EXPORT extern "C" __attribute__((visibility("default")))

namespace litefs::vfs {
namespace {

// Registers with `api`; on failure logs and (if given) reports in *errmsg.
int Register(const SqliteApi& api, char** errmsg) {
  SetSqliteLog(api.log);
  const std::optional<VfsConfig>& config = GetVfsConfig();
  if (!config) {
    if (errmsg) *errmsg = api.mprintf("litefs: LITEFS_DIR is not set to the managed directory");
    return SQLITE_ERROR;
  }
  Status st = RegisterLitefsVfs(api, *config);
  if (!st.ok()) {
    LogWarning(SQLITE_ERROR, "VFS not registered: %s", st.message().c_str());
    if (errmsg) *errmsg = api.mprintf("litefs: %s", st.message().c_str());
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

}  // namespace
}  // namespace litefs::vfs

LITEFS_EXPORT int sqlite3_litefs_init(sqlite3*, char** errmsg, const sqlite3_api_routines* r) {
  litefs::vfs::SqliteApi api;
  api.vfs_find = r->vfs_find;
  api.vfs_register = r->vfs_register;
  api.log = r->log;
  api.mprintf = r->mprintf;
  api.free = r->free;
  api.open = r->open;
  api.open_v2 = r->open_v2;
  api.open16 = r->open16;
  api.database_file_object = r->database_file_object;
  int rc = litefs::vfs::Register(api, errmsg);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

LITEFS_EXPORT int litefs_register_vfs(const litefs_sqlite_functions* f) {
  litefs::vfs::SqliteApi api;
  api.vfs_find = f->vfs_find;
  api.vfs_register = f->vfs_register;
  api.log = f->log;
  api.mprintf = f->mprintf;
  api.free = f->free;
  api.open = f->open;
  api.open_v2 = f->open_v2;
  api.open16 = f->open16;
  api.database_file_object = f->database_file_object;
  if (!api.complete()) return SQLITE_MISUSE;
  return litefs::vfs::Register(api, nullptr);
}
