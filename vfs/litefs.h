/* litefs.h — the C API of liblitefs, for programs whose SQLite LD_PRELOAD
 * cannot reach: a statically linked SQLite, or a bundled copy inside a
 * runtime. Link with -llitefs (pkg-config: litefs) and call
 *
 *     if (litefs_register() != SQLITE_OK) ...   // before opening databases
 *
 * It registers the litefs VFS, as the default, in the SQLite the program
 * itself calls (the function pointers below are taken from the program's
 * own SQLite at compile time). LITEFS_DIR (and optionally LITEFS_SOCKET) are
 * read from the environment, as with LD_PRELOAD. Calling it more than once
 * is harmless. Where the SQLite can load extensions, loading liblitefs as
 * an extension does the same (entry point sqlite3_litefs_init).
 */
#ifndef LITEFS_H
#define LITEFS_H

#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct litefs_sqlite_functions {
  sqlite3_vfs *(*vfs_find)(const char *);
  int (*vfs_register)(sqlite3_vfs *, int);
  void (*log)(int, const char *, ...);
  char *(*mprintf)(const char *, ...);
  void (*free)(void *);
  int (*open)(const char *, sqlite3 **);
  int (*open_v2)(const char *, sqlite3 **, int, const char *);
  int (*open16)(const void *, sqlite3 **);
  sqlite3_file *(*database_file_object)(const char *);
} litefs_sqlite_functions;

/* Returns SQLITE_OK, or SQLITE_ERROR with the reason logged (stderr and
 * sqlite3_log), e.g. when LITEFS_DIR is unset. */
int litefs_register_vfs(const litefs_sqlite_functions *functions);

static inline int litefs_register(void) {
  litefs_sqlite_functions f = {sqlite3_vfs_find, sqlite3_vfs_register, sqlite3_log,
                               sqlite3_mprintf,  sqlite3_free,         sqlite3_open,
                               sqlite3_open_v2,  sqlite3_open16,       sqlite3_database_file_object};
  return litefs_register_vfs(&f);
}

#ifdef __cplusplus
}
#endif

#endif /* LITEFS_H */
