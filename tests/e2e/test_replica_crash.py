"""Crash during apply: the replica's sidecar is SIGKILLed at random moments
while it applies a stream of transactions and readers keep reading. Readers
never see a torn database (they may see an older state), and after each
restart the replica converges."""

import random
import signal
import subprocess
import time

import pytest

import bank

from litefs_cluster import PYTHON, logical_bytes, wait_for

@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_replica_sidecar_killed_during_applies(cluster, mode):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; {bank.SETUP_SQL}")
    cluster.wait_replicated("app.db")
    seconds = 6.0
    readers = [subprocess.Popen([PYTHON, "-c", bank.READER, str(r.path("app.db")), str(seconds)],
                                env=env, stdout=subprocess.PIPE, text=True)
               for env in (r.env(), {k: v for k, v in r.env().items() if k != "LD_PRELOAD"})]
    writer = subprocess.Popen([PYTHON, "-c", bank.WRITER, str(p.path("app.db")), str(seconds)],
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
        stats = bank.reader_stats(out)
        assert stats["bad"] == 0 and stats["errors"] == 0, out
        assert stats["reads"] > 0, out
    assert kills >= 5
    cluster.wait_replicated("app.db", timeout=60)
    assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))


def test_replica_behind_its_log_after_a_power_failure_goes_back_and_catches_up(cluster):
    """Replica applies are not synced one by one (docs/recovery.md): a power
    failure may leave the database behind the LTX files that were applied to
    it. Simulated here by putting back the database and WAL as they were
    five transactions earlier. The replica must go back to where its
    database is, drop the later history and catch up incrementally — not
    record the difference as a transaction of its own (which would cost a
    snapshot) and not claim a position its database does not have."""
    p, r = cluster.primary, cluster.replica
    db = "app.db"
    p.sqlite(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1)")
    cluster.wait_replicated(db)
    assert (r.dir / ".litefs" / "dbs" / db / "applies-unsynced").exists()
    r.stop()
    saved_pos = r.pos(db)
    saved = {s: (r.dir / (db + s)).read_bytes() for s in ("", "-wal")}
    r.start()
    for i in range(5):
        p.sqlite(db, f"INSERT INTO t VALUES({i + 2})")
    cluster.wait_replicated(db)
    assert r.pos(db) != saved_pos
    r.stop(signal.SIGKILL)
    for s, data in saved.items():
        (r.dir / (db + s)).write_bytes(data)
    (r.dir / (db + "-shm")).unlink(missing_ok=True)
    snapshots_before = p.log_text().count("sending snapshot")
    r.start()
    # Its -pos still names the later position until recovery rewrites it, so
    # wait for the rows themselves rather than for equal positions.
    wait_for(lambda: r.sqlite(db, "SELECT group_concat(x) FROM t").stdout.strip() == "1,2,3,4,5,6", 30,
             what="the replica to catch up")
    assert "the database is behind its LTX log" in r.log_text()
    assert cluster.wait_replicated(db) == p.pos(db)
    assert p.log_text().count("sending snapshot") == snapshots_before
