/* static_sqlite_app: a program with SQLite linked statically, which
 * LD_PRELOAD cannot interpose; it registers litefs through litefs.h.
 *
 *   static_sqlite_app DB SQL
 */
#include <stdio.h>

#include "vfs/litefs.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DB SQL\n", argv[0]);
    return 2;
  }
  if (litefs_register() != SQLITE_OK) return 1;
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0) != SQLITE_OK) {
    fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  char *err = 0;
  if (sqlite3_exec(db, argv[2], 0, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "exec: %s\n", err);
    return 1;
  }
  printf("vfs %s\n", sqlite3_vfs_find(0)->zName);
  sqlite3_close(db);
  return 0;
}
