/* large_tx_bench: one write transaction of MIB mebibytes.
 *
 *   large_tx_bench DB JOURNAL_MODE MIB
 *
 * Prints "seconds <s>" and "maxrss_kb <peak resident set of this process>". */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(int rc, sqlite3 *db, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DB JOURNAL_MODE MIB\n", argv[0]);
    return 2;
  }
  sqlite3 *db;
  check(sqlite3_open(argv[1], &db), db, "open");
  sqlite3_busy_timeout(db, 60000);
  char sql[256];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA cache_size=-16384;", argv[2]);
  check(sqlite3_exec(db, sql, 0, 0, 0), db, "pragmas");
  check(sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS big(b BLOB)", 0, 0, 0), db, "create");
  long rows = atol(argv[3]) * 16;  /* 64 KiB each */
  double start = now();
  check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
  sqlite3_stmt *ins;
  check(sqlite3_prepare_v2(db, "INSERT INTO big VALUES (randomblob(65536))", -1, &ins, 0), db, "prepare");
  for (long i = 0; i < rows; i++) {
    check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
  double elapsed = now() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("seconds %.3f\nmaxrss_kb %ld\n", elapsed, ru.ru_maxrss);
  sqlite3_close(db);
  return 0;
}
