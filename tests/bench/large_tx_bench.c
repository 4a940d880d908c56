/* large_tx_bench: one write transaction of MIB mebibytes.
 *
 *   large_tx_bench DB JOURNAL_MODE MIB
 *
 * Prints "seconds <s>" and "maxrss_kb <peak resident set of this process>". */
#include "bench_util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DB JOURNAL_MODE MIB\n", argv[0]);
    return 2;
  }
  sqlite3 *db;
  bench_check(sqlite3_open(argv[1], &db), db, "open");
  sqlite3_busy_timeout(db, 60000);
  char sql[256];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA cache_size=-16384;", argv[2]);
  bench_check(sqlite3_exec(db, sql, 0, 0, 0), db, "pragmas");
  bench_check(sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS big(b BLOB)", 0, 0, 0), db, "create");
  long rows = atol(argv[3]) * 16;  /* 64 KiB each */
  double start = bench_now();
  bench_check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
  sqlite3_stmt *ins;
  bench_check(sqlite3_prepare_v2(db, "INSERT INTO big VALUES (randomblob(65536))", -1, &ins, 0), db, "prepare");
  for (long i = 0; i < rows; i++) {
    bench_check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  bench_check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
  double elapsed = bench_now() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("seconds %.3f\nmaxrss_kb %ld\n", elapsed, ru.ru_maxrss);
  sqlite3_close(db);
  return 0;
}
