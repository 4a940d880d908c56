"""Crash safety: SIGKILL the writing app, and the sidecar, at random moments
during a stream of commits. Afterwards the primary's position matches its
database, every commit that returned to the app is in the replicated history,
no rolled-back transaction is, and the replica converges byte for byte."""

import os
import random
import re
import signal
import subprocess
import time

import pytest

from litefs_cluster import PYTHON, logical_bytes, logical_checksum, wait_for

# A writer that prints "committed N" after each COMMIT returns. It resumes
# numbering from the table, so each run continues where the last died.
WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("PRAGMA synchronous=" + sys.argv[3])
db.execute("CREATE TABLE IF NOT EXISTS t(n INTEGER PRIMARY KEY, pad BLOB)")
n = db.execute("SELECT coalesce(max(n), 0) FROM t").fetchone()[0]
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    # Several pages per transaction, so a kill can land mid-write.
    db.execute("INSERT INTO t VALUES (?, randomblob(?))", (n, 3000 + (n % 5) * 2000))
    db.execute("UPDATE t SET pad = randomblob(100) WHERE n = ?", (max(1, n - 7),))
    db.execute("COMMIT")
    sys.stdout.write("committed %d\\n" % n)  # one write: a kill cannot split the number
"""

KILLS = int(os.environ.get("LITEFS_CRASH_KILLS", "200"))


def committed_numbers(output):
    # A kill may cut the last line short ("committed" alone); a number that
    # was written at all means its COMMIT had returned.
    return {int(m.group(1)) for m in re.finditer(r"^committed (\d+)$", output, re.M)}


def wait_settled(node, db, timeout=30):
    """Waits until the node's position names its database as SQLite sees it
    (recovery done, every commit captured); returns the position."""
    def settled():
        pos = node.pos(db)
        return pos and logical_checksum(node.path(db)) == int(pos.split("/")[1], 16) and pos
    return wait_for(settled, timeout=timeout, what=f"{node.name}'s position to match its database")


def check_history(cluster, db, committed):
    """The invariants after crashes, once everything has settled."""
    p, r = cluster.primary, cluster.replica
    # The sidecar notices a killed writer when its socket closes and then
    # recovers the database (rolling back a hot journal, or recording a
    # commit that passed its commit point): wait for that to settle.
    wait_settled(p, db, timeout=60)
    pos = cluster.wait_replicated(db, timeout=60)
    txid, checksum = (int(x, 16) for x in pos.split("/"))
    # Position = database (as SQLite sees it, through the WAL), on both nodes.
    assert logical_checksum(p.path(db)) == checksum
    assert logical_bytes(r.path(db)) == logical_bytes(p.path(db))
    ok = subprocess.run(["sqlite3", str(r.path(db)), "PRAGMA integrity_check"],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ok"
    # The replica is built from LTX files only: every commit the app saw
    # return is there; rows whose COMMIT never returned may or may not be
    # (SQLite may have passed its commit point), but nothing else is.
    rows = subprocess.run(["sqlite3", str(r.path(db)), "SELECT n FROM t"],
                          capture_output=True, text=True, check=True).stdout.split()
    have = {int(x) for x in rows}
    missing = committed - have
    assert not missing, f"commits lost: {sorted(missing)[:10]}"
    assert have == set(range(1, max(have) + 1)), "history has holes"
    return txid


@pytest.mark.parametrize("mode,sync", [("DELETE", "FULL"), ("WAL", "NORMAL"), ("WAL", "FULL"),
                                       ("TRUNCATE", "NORMAL"), ("PERSIST", "FULL")])
def test_app_killed_at_random_moments(cluster, mode, sync):
    p = cluster.primary
    rng = random.Random(f"app-{mode}")
    committed = set()
    kills = KILLS if (mode, sync) in (("DELETE", "FULL"), ("WAL", "NORMAL")) else KILLS // 4
    for _ in range(kills):
        proc = subprocess.Popen([PYTHON, "-u", "-c", WRITER, str(p.path("app.db")), mode, sync],
                                env=p.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # Let it commit a little (its first line proves it is running), then
        # kill it at a random point of a later transaction.
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert first.startswith("committed"), err
        committed |= committed_numbers(first + out)
    txid = check_history(cluster, "app.db", committed)
    assert txid >= len(committed)


@pytest.mark.parametrize("mode,sync", [("DELETE", "FULL"), ("WAL", "FULL"), ("WAL", "NORMAL")])
def test_sidecar_killed_at_random_moments(cluster, mode, sync):
    """The writer keeps going (retrying while the sidecar is away); the
    primary's sidecar is SIGKILLed and restarted again and again."""
    p = cluster.primary
    rng = random.Random("sidecar")
    committed = set()
    # WAL + NORMAL: commits are handed over without waiting, so kills also
    # land while the sidecar holds commits it has not captured yet.
    writer = subprocess.Popen([PYTHON, "-u", "-c", WRITER, str(p.path("app.db")), mode,
                               sync], env=p.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        writer.stdout.readline()
        for _ in range(KILLS // 10):
            time.sleep(rng.uniform(0, 0.05))
            p.stop(signal.SIGKILL)
            p.start()
            # Progress after each restart: the writer commits again.
            line = writer.stdout.readline()
            assert line.startswith("committed"), writer.stderr.read()
            committed |= committed_numbers(line)
    finally:
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=30)
        committed |= committed_numbers(out)
    check_history(cluster, "app.db", committed)


@pytest.mark.parametrize("db_changed", [False, True])
def test_torn_newest_ltx_is_dropped_at_recovery(cluster, db_changed):
    """Commits write their LTX file in place under its final name, so a crash
    (or a power loss before an unsynced file reached the disk) can leave the
    newest file torn. Recovery drops it and realigns with the database: the
    transaction, if it reached the database, is recorded again."""
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB);"
             "INSERT INTO t VALUES (1, randomblob(3000));")
    pos = cluster.wait_replicated("app.db")
    txid = int(pos.split("/")[0], 16)
    ltx_dirs = [d for d in p.dir.parent.rglob("ltx") if d.parent.name == "app.db"]
    assert len(ltx_dirs) == 1, ltx_dirs
    newest = sorted(ltx_dirs[0].glob("*.ltx"))[-1]  # commits captured together share one
    assert newest.name.endswith(f"-{txid:016x}.ltx")
    p.stop(signal.SIGKILL)
    if db_changed:
        # The commit reached the database; its LTX file did not finish.
        subprocess.run(["sqlite3", str(p.path("app.db")),
                        "INSERT INTO t VALUES (2, randomblob(3000));"], check=True)
    torn = ltx_dirs[0] / f"{txid + 1:016x}-{txid + 1:016x}.ltx"
    torn.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    p.start()
    pos = wait_settled(p, "app.db")
    assert "dropping an incomplete LTX file" in p.log_text()
    assert int(pos.split("/")[0], 16) == (txid + 1 if db_changed else txid)
    if not db_changed:
        assert not torn.exists()
    # Writes go on, and the replica converges.
    p.sqlite("app.db", "INSERT INTO t VALUES (3, randomblob(3000));")
    cluster.wait_replicated("app.db", timeout=30)
    assert logical_bytes(cluster.replica.path("app.db")) == logical_bytes(p.path("app.db"))


def test_unsynced_ltx_files_torn_by_a_power_failure_are_rebuilt_from_the_wal(cluster):
    """WAL commits are captured without syncing their LTX files, even with
    synchronous=FULL: the app's synced WAL is their durable record until the
    WAL may be reset, and the VFS has the sidecar sync them first
    (capture_durability.h). A power failure may tear any file written since
    the last sync, not only the newest. The marker names the first of them;
    recovery verifies them all, drops the first broken one and every later
    one, and records the WAL frames after the last intact file again: the
    same transactions under the same TXIDs, and a replica that was behind
    catches up through them."""
    p, r = cluster.primary, cluster.replica
    ltx_dir = p.dir / ".litefs" / "dbs" / "app.db" / "ltx"
    marker = ltx_dir.parent / "ltx-unsynced"
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB);")
    before = int(cluster.wait_replicated("app.db").split("/")[0], 16)
    r.stop()
    # The app keeps its connection: closing the last one would flush (and
    # sync) before deleting the WAL.
    app = subprocess.Popen([PYTHON, "-c", f"""
import sqlite3, sys
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
db.execute("PRAGMA synchronous=FULL")
for n in range(1, 41):
    db.execute("INSERT INTO t VALUES (?, randomblob(2000))", (n,))
print("written", flush=True)
sys.stdin.readline()
"""], env=p.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "written"
        wait_for(lambda: p.pos("app.db") and int(p.pos("app.db").split("/")[0], 16) == before + 40,
                 timeout=15, what="the 40 commits to be captured")
        first_unsynced = int(marker.read_text())
        assert before < first_unsynced <= before + 1
        unsynced = sorted(f for f in ltx_dir.glob("*.ltx")
                          if int(f.name[17:33], 16) >= first_unsynced)
        assert len(unsynced) >= 3, [f.name for f in unsynced]
        p.stop(signal.SIGKILL)
        # The power failure: a file in the middle lost its second half; the
        # files after it (and the newest) reached the disk whole.
        torn = unsynced[len(unsynced) // 2]
        torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
        p.start()
        # Recovery ends by making what it kept and wrote durable (the
        # position file shows the last one from before the crash until then).
        wait_for(lambda: not marker.exists(), timeout=15, what="recovery to sync and drop the marker")

        pos = wait_settled(p, "app.db")
        assert int(pos.split("/")[0], 16) == before + 40
        assert "dropping LTX files a power failure left incomplete" in p.log_text()
    finally:
        app.communicate("\n", timeout=30)
    r.start()
    pos = cluster.wait_replicated("app.db", timeout=30)
    assert int(pos.split("/")[0], 16) == before + 40
    assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))
    assert "sending snapshot" not in p.log_text()  # the history itself was whole again


@pytest.mark.parametrize("database_lost_the_last", [False, True])
def test_unsynced_rollback_ltx_files_lost_with_the_power_are_rebuilt_from_their_copies(
        cluster, database_lost_the_last):
    """A rollback-mode commit the app synced has its LTX file written without
    a sync and a copy appended to the capture log, synced there: one flush of
    data instead of the file's and its directory's (capture_durability.h).
    A power failure may then tear or lose any file written since the last
    sync. Recovery drops the first broken one and every later one, and
    brings them back from their copies: the same transactions under the
    same TXIDs, and a replica that was behind catches up through them.
    Only what the database holds comes back: a copy past its state (here a
    database file put back one commit) is not re-applied to it."""
    p, r = cluster.primary, cluster.replica
    ltx_dir = p.dir / ".litefs" / "dbs" / "app.db" / "ltx"
    marker = ltx_dir.parent / "ltx-unsynced"
    p.sqlite("app.db", "PRAGMA journal_mode=DELETE; CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB);")
    before = int(cluster.wait_replicated("app.db").split("/")[0], 16)
    r.stop()
    saved = p.dir.parent / "app.db.after-29"
    p.python(f"""
import shutil, sqlite3
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
db.execute("PRAGMA synchronous=FULL")
for n in range(1, 31):
    db.execute("INSERT INTO t VALUES (?, randomblob(1000))", (n,))
    if n == 29:
        shutil.copyfile({str(p.path('app.db'))!r}, {str(saved)!r})
""")
    # Rollback commits are recorded before COMMIT returns.
    assert int(p.pos("app.db").split("/")[0], 16) == before + 30
    assert int(marker.read_text()) <= before + 1  # the table's commit may be unsynced too
    unsynced = sorted(f for f in ltx_dir.glob("*.ltx") if int(f.name[17:33], 16) > before)
    assert len(unsynced) == 30, [f.name for f in unsynced]
    p.stop(signal.SIGKILL)
    # The power failure: a file in the middle lost its second half, and the
    # newest never reached the disk at all.
    torn = unsynced[len(unsynced) // 2]
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    unsynced[-1].unlink()
    if database_lost_the_last:
        saved.replace(p.path("app.db"))
    expected = before + (29 if database_lost_the_last else 30)
    p.start()
    # Recovery ends by making what it kept and wrote durable (the position
    # file still shows the last one from before the crash until then).
    wait_for(lambda: not marker.exists(), timeout=15, what="recovery to sync and drop the marker")

    pos = wait_settled(p, "app.db")
    assert int(pos.split("/")[0], 16) == expected
    log = p.log_text()
    assert "dropping LTX files a power failure left incomplete" in log
    assert "bringing back an LTX file a power failure lost" in log
    assert "recording its pages as the next transaction" not in log
    assert "re-applying the last LTX file" not in log
    restored = sorted(f.name for f in ltx_dir.glob("*.ltx"))
    assert restored[-(expected - before):] == [f.name for f in unsynced[:expected - before]]
    assert p.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == str(expected - before)
    r.start()
    pos = cluster.wait_replicated("app.db", timeout=30)
    assert int(pos.split("/")[0], 16) == expected
    assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))
    assert "sending snapshot" not in p.log_text()  # the history itself was whole again
