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

// sqlite3_api_routines and litefs_sqlite_functions name the functions alike.
template <typename Table>
SqliteApi ApiFrom(const Table& t) {
  SqliteApi api;
  api.vfs_find = t.vfs_find;
  api.vfs_register = t.vfs_register;
  api.log = t.log;
  api.mprintf = t.mprintf;
  api.free = t.free;
  api.open = t.open;
  api.open_v2 = t.open_v2;
  api.open16 = t.open16;
  api.database_file_object = t.database_file_object;
  return api;
}

}  // namespace
}  // namespace litefs::vfs

LITEFS_EXPORT int sqlite3_litefs_init(sqlite3*, char** errmsg, const sqlite3_api_routines* r) {
  int rc = litefs::vfs::Register(litefs::vfs::ApiFrom(*r), errmsg);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

LITEFS_EXPORT int litefs_register_vfs(const litefs_sqlite_functions* f) {
  litefs::vfs::SqliteApi api = litefs::vfs::ApiFrom(*f);
  if (!api.complete()) return SQLITE_MISUSE;
  return litefs::vfs::Register(api, nullptr);
}
