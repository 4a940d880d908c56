/* read_bench: read-only point queries per second.
 *
 *   read_bench DB SECONDS
 *
 * Fills nothing: the database must hold table t(id INTEGER PRIMARY KEY, v)
 * (commit_bench makes one). Prints "q_per_s <n>". */
#include "bench_util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DB SECONDS\n", argv[0]);
    return 2;
  }
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, 0) != SQLITE_OK) {
    fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_stmt *max, *q;
  sqlite3_prepare_v2(db, "SELECT max(id) FROM t", -1, &max, 0);
  if (sqlite3_step(max) != SQLITE_ROW) {
    fprintf(stderr, "no table t\n");
    return 1;
  }
  long rows = sqlite3_column_int64(max, 0);
  sqlite3_finalize(max);
  sqlite3_prepare_v2(db, "SELECT v FROM t WHERE id = ?", -1, &q, 0);
  double seconds = atof(argv[2]);
  double start = bench_now(), end = start + seconds;
  long n = 0;
  unsigned seed = 1;
  while (bench_now() < end) {
    for (int i = 0; i < 100; i++) {
      seed = seed * 1103515245u + 12345u;
      sqlite3_bind_int64(q, 1, 1 + (long)(seed % (unsigned)(rows ? rows : 1)));
      sqlite3_step(q);
      sqlite3_reset(q);
    }
    n += 100;
  }
  printf("q_per_s %.1f\n", n / (bench_now() - start));
  sqlite3_finalize(q);
  sqlite3_close(db);
  return 0;
}
