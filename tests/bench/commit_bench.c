/* commit_bench: 1-row write transactions per second against one database.
 *
 *   commit_bench DB JOURNAL_MODE SYNCHRONOUS SECONDS
 *
 * Prints "tx_per_s <n>", "tx <count>" and the median and 90th percentile
 * of the commits' latencies ("p50_us", "p90_us"). Run once on a plain path (vanilla
 * SQLite) and once under LD_PRELOAD=liblitefs.so on a managed path; the
 * ratio is what scripts/bench reports. */
#include "bench_util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s DB JOURNAL_MODE SYNCHRONOUS SECONDS\n", argv[0]);
    return 2;
  }
  sqlite3 *db;
  bench_check(sqlite3_open(argv[1], &db), db, "open");
  sqlite3_busy_timeout(db, 10000);
  char sql[256];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=%s;", argv[2], argv[3]);
  bench_check(sqlite3_exec(db, sql, 0, 0, 0), db, "pragmas");
  bench_check(sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)", 0, 0, 0),
        db, "create");
  sqlite3_stmt *ins;
  bench_check(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &ins, 0), db, "prepare");
  double seconds = atof(argv[4]);
  double start = bench_now(), end = start + seconds;
  long n = 0, cap = 1 << 16;
  double *latency = malloc(sizeof(double) * (size_t)cap);
  for (double now = start; now < end;) {
    sqlite3_bind_text(ins, 1, "a small row of benchmark data", -1, SQLITE_STATIC);
    bench_check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
    double done = bench_now();
    if (n == cap) latency = realloc(latency, sizeof(double) * (size_t)(cap *= 2));
    if (!latency) return 1;
    latency[n++] = done - now;
    now = done;
  }
  double elapsed = bench_now() - start;
  qsort(latency, (size_t)n, sizeof(double), compare_doubles);
  printf("tx %ld\ntx_per_s %.1f\n", n, n / elapsed);
  if (n > 0) printf("p50_us %.1f\np90_us %.1f\n", 1e6 * latency[n / 2], 1e6 * latency[n * 9 / 10]);
  free(latency);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return 0;
}
