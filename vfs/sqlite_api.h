// The SQLite functions liblitefs.so calls, resolved from the copy of SQLite
// the application actually uses. The library never links libsqlite3: under
// LD_PRELOAD it finds the app's copy at the first interposed open (see
// sqlite-internals reference §6), and as an extension it receives them.
#pragma once

#include <sqlite3.h>

namespace litefs::vfs {

struct SqliteApi {
  sqlite3_vfs* (*vfs_find)(const char*) = nullptr;
  int (*vfs_register)(sqlite3_vfs*, int) = nullptr;
  void (*log)(int, const char*, ...) = nullptr;
  char* (*mprintf)(const char*, ...) = nullptr;
  void (*free)(void*) = nullptr;
  int (*open)(const char*, sqlite3**) = nullptr;
  int (*open_v2)(const char*, sqlite3**, int, const char*) = nullptr;
  int (*open16)(const void*, sqlite3**) = nullptr;
  sqlite3_file* (*database_file_object)(const char*) = nullptr;

  bool complete() const {
    return vfs_find && vfs_register && log && mprintf && free && open && open_v2 && open16 &&
           database_file_object;
  }
};

// Resolves the real SQLite behind the interposed open functions: the next
// object in lookup order (RTLD_NEXT), else an already-loaded
// libsqlite3.so.0, else any loaded object exporting sqlite3_open_v2.
// Every function comes from the same object. Returns nullptr if no SQLite is
// loaded. Thread-safe; resolves once.
const SqliteApi* PreloadSqliteApi();

}  // namespace litefs::vfs
