"""Crash during apply: the replica's sidecar is SIGKILLed at random moments
while it applies a stream of transactions and readers keep reading. Readers
never see a torn database (they may see an older state), and after each
restart the replica converges."""

import random
import signal
import subprocess
import time

import pytest

from litefs_cluster import PYTHON, logical_bytes, wait_for

READER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
deadline = time.monotonic() + float(sys.argv[2])
reads = bad = errors = 0
while time.monotonic() < deadline:
    try:
        total = db.execute("SELECT sum(bal) FROM acct").fetchone()[0]
        db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as e:
        errors += 1
        print("error", e, flush=True)
        continue
    reads += 1
    if total != 100000:
        bad += 1
        print("bad", total, flush=True)
print("reads", reads, "bad", bad, "errors", errors, flush=True)
"""

WRITER = """
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
deadline = time.monotonic() + float(sys.argv[2])
rng = random.Random(3)
while time.monotonic() < deadline:
    a, b = rng.randint(1, 1000), rng.randint(1, 1000)
    db.execute("BEGIN")
    db.execute("UPDATE acct SET bal = bal - 7 WHERE id = ?", (a,))
    db.execute("UPDATE acct SET bal = bal + 7 WHERE id = ?", (b,))
    db.execute("COMMIT")
"""


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_replica_sidecar_killed_during_applies(cluster, mode):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; "
                       "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT, pad BLOB);"
                       "INSERT INTO acct SELECT value, 100, randomblob(400) FROM generate_series(1, 1000);")
    cluster.wait_replicated("app.db")
    seconds = 6.0
    readers = [subprocess.Popen([PYTHON, "-c", READER, str(r.path("app.db")), str(seconds)],
                                env=env, stdout=subprocess.PIPE, text=True)
               for env in (r.env(), {k: v for k, v in r.env().items() if k != "LD_PRELOAD"})]
    writer = subprocess.Popen([PYTHON, "-c", WRITER, str(p.path("app.db")), str(seconds)],
                              env=p.env(), stderr=subprocess.PIPE, text=True)
    rng = random.Random(mode)
    kills = 0
    deadline = time.monotonic() + seconds - 1
    while time.monotonic() < deadline and kills < 12:
        time.sleep(rng.uniform(0.05, 0.3))
        r.stop(signal.SIGKILL)
        r.start()
        kills += 1
    assert writer.wait(60) == 0, writer.stderr.read()
    for proc in readers:
        out, _ = proc.communicate(timeout=60)
        last = out.strip().splitlines()[-1].split()
        stats = dict(zip(last[0::2], map(int, last[1::2])))
        assert stats["bad"] == 0 and stats["errors"] == 0, out
        assert stats["reads"] > 0, out
    assert kills >= 5
    cluster.wait_replicated("app.db", timeout=60)
    assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))
