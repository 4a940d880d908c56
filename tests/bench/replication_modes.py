"""Replication benchmarks for ./scripts/bench (issue 4 item 10), each on a
fresh primary + replica on loopback:

  lag       replication lag at a paced commit rate (default 1,000 tx/s, WAL +
            synchronous=NORMAL, one row per transaction): for every TXID, the
            time the app's COMMIT returned on the primary against the time the
            replica's GET /events reported it applied, both read from the same
            machine clock (CLOCK_MONOTONIC) in separate processes. The first
            3 s at the same rate are a warm-up, not measured: right after
            many files were deleted (the previous run), ext4 without a journal
            skips the recently freed inodes one by one at every file creation
            (`recently_deleted`) for a few seconds.
  snapshot  a new replica receiving a database as a snapshot (pages streamed
            from the primary, verified, applied, synced) against `cp` of the
            same file (and cp + sync).
  apply     replica apply throughput: the replica is stopped, the primary
            commits a backlog, the replica restarts and applies it.
  memory    sidecar resident memory with 1 database and with 100.

Numbers only; nothing here asserts a target."""

import bisect
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from litefs_cluster import PYTHON, Cluster, Node, free_port, wait_for  # noqa: E402

# argv: db, rate (tx/s), seconds, output path, warm-up seconds. Commits one
# row per transaction on a fixed schedule and writes "<txid> <monotonic ns
# when COMMIT returned>" for the transactions after the warm-up.
PACED_WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS lag(id INTEGER PRIMARY KEY, body TEXT)")
pos = open(sys.argv[1] + "-pos").read()
txid = int(pos.split("/")[0], 16)
rate, seconds, warmup = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[5])
skip = int(rate * warmup)
n = skip + int(rate * seconds)
interval = 1e9 / rate
out = []
start = time.monotonic_ns()
for i in range(n):
    due = start + int(i * interval)
    while True:
        now = time.monotonic_ns()
        if now >= due:
            break
        if due - now > 200_000:
            time.sleep((due - now - 100_000) / 1e9)
    db.execute("INSERT INTO lag(body) VALUES ('x')")
    txid += 1
    if i == skip:
        measured_start = time.monotonic_ns()
    if i >= skip:
        out.append((txid, time.monotonic_ns()))
elapsed = (time.monotonic_ns() - measured_start) / 1e9
with open(sys.argv[4], "w") as f:
    f.write("rate %.1f\n" % ((n - skip) / elapsed))
    for t, ns in out:
        f.write("%d %d\n" % (t, ns))
"""

# argv: port, db, output path, last txid file (read at each event: the TXID
# to stop at, once it exists).
# Records "<txid> <monotonic ns when the tx event arrived>" for `db`.
EVENTS_WATCHER = r"""
import http.client, json, os, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=300)
conn.request("GET", "/events")
resp = conn.getresponse()
print("subscribed", flush=True)
seen = []
db = sys.argv[2]
deadline = time.monotonic() + 600
try:
    while time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            break
        now = time.monotonic_ns()
        e = json.loads(line)
        if e.get("type") == "tx" and e.get("db") == db:
            seen.append((int(e["data"]["txID"], 16), now))
            if os.path.exists(sys.argv[4]) and seen[-1][0] >= int(open(sys.argv[4]).read()):
                break
finally:
    with open(sys.argv[3], "w") as f:
        for t, ns in seen:
            f.write("%d %d\n" % (t, ns))
"""


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def lag(tmp, rate=1000, seconds=10, where="disk", warmup=3):
    tmp = Path(tmp) / f"lag-{rate:.0f}"
    cluster = Cluster(tmp).start()
    try:
        p, r = cluster.primary, cluster.replica
        db = "lag.db"
        p.sqlite(db, "PRAGMA journal_mode=WAL; CREATE TABLE lag(id INTEGER PRIMARY KEY, body TEXT);")
        cluster.wait_replicated(db)
        commits, arrivals, last = tmp / "commits", tmp / "arrivals", tmp / "last"
        watcher = subprocess.Popen([PYTHON, "-c", EVENTS_WATCHER, str(r.port), db, str(arrivals),
                                    str(last)], stdout=subprocess.PIPE, text=True)
        assert watcher.stdout.readline().strip() == "subscribed"
        w = subprocess.run([PYTHON, "-c", PACED_WRITER, str(p.path(db)), str(rate), str(seconds),
                            str(commits), str(warmup)], env=p.env(), capture_output=True, text=True, timeout=600)
        if w.returncode != 0:
            raise RuntimeError(w.stderr)
        lines = commits.read_text().splitlines()
        achieved = float(lines[0].split()[1])
        committed = dict(tuple(map(int, l.split())) for l in lines[1:])
        # One more commit after the measured ones tells the watcher to stop.
        last.write_text(str(max(committed) + 1))
        p.sqlite(db, "INSERT INTO lag(body) VALUES ('end')")
        cluster.wait_replicated(db, timeout=120)
        watcher.wait(timeout=120)
        applied = dict(tuple(map(int, l.split())) for l in arrivals.read_text().splitlines())
        # Commits captured together arrive as one LTX file and one event,
        # named by its last TXID: each is applied when the first event at or
        # after its TXID arrives.
        event_txids = sorted(applied)

        def applied_at(t):
            k = bisect.bisect_left(event_txids, t)
            return applied[event_txids[k]] if k < len(event_txids) else None
        lags = sorted((applied_at(t) - ns) / 1e6 for t, ns in committed.items() if applied_at(t) is not None)
        missing = sum(1 for t in committed if applied_at(t) is None)
        shared = sum(1 for t in committed if t not in applied)
        print(f"replication lag at {rate} tx/s target ({achieved:.0f} achieved, {len(committed)} tx, "
              f"WAL+NORMAL, {where}, after {warmup:g} s of warm-up): p50 {percentile(lags, 50):.2f} ms, p90 {percentile(lags, 90):.2f} ms, "
              f"p99 {percentile(lags, 99):.2f} ms, max {lags[-1]:.2f} ms "
              f"(target p50 <= 1 ms, p99 <= 10 ms); tx never applied: {missing}; "
              f"tx sharing an LTX file with later ones: {shared}")
        return {"rate": achieved, "p50": percentile(lags, 50), "p99": percentile(lags, 99),
                "max": lags[-1], "missing": missing}
    finally:
        cluster.stop()


def _timed(cmd):
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - start


def snapshot(tmp, mib=256):
    tmp = Path(tmp) / "snapshot"
    cluster = Cluster(tmp, replicas=0).start()
    try:
        p = cluster.primary
        db = "snap.db"
        big = ROOT / "build" / "tests" / "bench" / "large_tx_bench"
        env = p.env()
        subprocess.run([str(big), str(p.path(db)), "DELETE", str(mib)], env=env, check=True,
                       capture_output=True)
        size = p.path(db).stat().st_size
        size_mib = size / (1 << 20)
        subprocess.run(["sync"], check=True)
        # cp of the same file, cold target each time (page cache warm for both).
        cp_s = _timed(["cp", str(p.path(db)), str(tmp / "copy.db")])
        (tmp / "copy.db").unlink()
        cp_sync_s = _timed(["sh", "-c", f"cp {p.path(db)} {tmp / 'copy.db'} && sync {tmp / 'copy.db'}"])
        (tmp / "copy.db").unlink()
        # A new replica: everything it has arrives as one snapshot.
        port = free_port()
        r = Node(tmp, "new-replica", port, p.port, candidate=False)
        start = time.monotonic()
        r.start(wait=False)
        target = p.pos(db)
        wait_for(lambda: r.pos(db) == target, timeout=1800, interval=0.005, what="snapshot applied")
        snap_s = time.monotonic() - start
        r.stop()
        # Export (the same pages written to a plain file and streamed).
        start = time.monotonic()
        subprocess.run([str(ROOT / "build" / "sidecar" / "litefs"), "export", "-name", db,
                        "-url", f"http://127.0.0.1:{p.port}", str(tmp / "export.db")],
                       check=True, capture_output=True)
        export_s = time.monotonic() - start
        print(f"snapshot of a {size_mib:.0f} MiB database to a new replica: {snap_s:.2f} s "
              f"({size_mib / snap_s:.0f} MiB/s); cp {cp_s:.2f} s ({size_mib / cp_s:.0f} MiB/s), "
              f"cp + sync {cp_sync_s:.2f} s ({size_mib / cp_sync_s:.0f} MiB/s); "
              f"ratio to cp + sync {cp_sync_s / snap_s:.2f}; litefs export {export_s:.2f} s "
              f"({size_mib / export_s:.0f} MiB/s)")
        return {"mib": size_mib, "snapshot_s": snap_s, "cp_s": cp_s, "cp_sync_s": cp_sync_s,
                "export_s": export_s}
    finally:
        cluster.stop()


BACKLOG_WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB)")
rows = int(sys.argv[4])
for i in range(int(sys.argv[3])):
    db.execute("BEGIN")
    db.executemany("INSERT INTO t(body) VALUES (randomblob(3000))", [()] * rows)
    db.execute("COMMIT")
"""


def apply(tmp, txs=3000, rows_per_tx=(1, 64)):
    results = {}
    for mode in ("WAL", "DELETE"):
        for rows in rows_per_tx:
            base = Path(tmp) / f"apply-{mode}-{rows}"
            cluster = Cluster(base).start()
            try:
                p, r = cluster.primary, cluster.replica
                db = "apply.db"
                p.sqlite(db, f"PRAGMA journal_mode={mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB);")
                cluster.wait_replicated(db)
                r.stop()
                n = txs if rows == 1 else max(1, txs // 10)
                w = subprocess.run([PYTHON, "-c", BACKLOG_WRITER, str(p.path(db)), mode, str(n), str(rows)],
                                   env=p.env(), capture_output=True, text=True, timeout=1800)
                if w.returncode != 0:
                    raise RuntimeError(w.stderr)
                ltx_dir = p.dir / ".litefs" / "dbs" / db / "ltx"
                ltx_bytes = sum(f.stat().st_size for f in ltx_dir.glob("*.ltx"))
                target = p.pos(db)
                start = time.monotonic()
                r.start(wait=False)
                wait_for(lambda: r.pos(db) == target, timeout=1800, interval=0.005,
                         what="backlog applied")
                secs = time.monotonic() - start
                page_mib = n * rows * 3000 / (1 << 20)
                print(f"replica apply, {mode}, backlog of {n} tx x {rows} row(s) of 3 KB: {secs:.2f} s, "
                      f"{n / secs:.0f} tx/s, {page_mib / secs:.1f} MiB/s of row data "
                      f"({ltx_bytes / (1 << 20):.1f} MiB of LTX)")
                results[(mode, rows)] = (n / secs, page_mib / secs)
            finally:
                cluster.stop()
    return results


def memory(tmp, many=100):
    base = Path(tmp) / "memory"
    cluster = Cluster(base).start()
    try:
        p, r = cluster.primary, cluster.replica
        writer = ("import sqlite3, sys\n"
                  "for name in sys.argv[1:]:\n"
                  "    db = sqlite3.connect(name, isolation_level=None)\n"
                  "    db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)')\n"
                  "    for i in range(10):\n"
                  "        db.execute('INSERT INTO t(body) VALUES (randomblob(2000))')\n"
                  "    db.close()\n")
        subprocess.run([PYTHON, "-c", writer, str(p.path("db000.db"))], env=p.env(), check=True)
        cluster.wait_replicated("db000.db")
        one = (rss_mib(p.proc.pid), rss_mib(r.proc.pid))
        names = [str(p.path(f"db{i:03d}.db")) for i in range(1, many)]
        subprocess.run([PYTHON, "-c", writer, *names], env=p.env(), check=True)
        for i in range(1, many):
            cluster.wait_replicated(f"db{i:03d}.db", timeout=120)
        hundred = (rss_mib(p.proc.pid), rss_mib(r.proc.pid))
        per = [(hundred[i] - one[i]) / (many - 1) * 1024 for i in range(2)]
        print(f"sidecar RSS with 1 database: primary {one[0]:.1f} MiB, replica {one[1]:.1f} MiB; "
              f"with {many}: primary {hundred[0]:.1f} MiB, replica {hundred[1]:.1f} MiB; "
              f"per database: primary {per[0]:.0f} KiB, replica {per[1]:.0f} KiB")
        return {"one": one, "many": hundred, "per_db_kib": per}
    finally:
        cluster.stop()
