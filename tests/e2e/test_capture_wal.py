"""WAL mode end to end: commits captured from WAL frames (with LiteFS's WAL
fields in each LTX), auto-checkpoints and WAL restarts, switching journal
modes on a live database, and replicas applying into WAL-mode databases
while their readers keep reading."""

import struct
import subprocess
import time

import pytest

import bank

from litefs_cluster import PYTHON, logical_bytes, logical_checksum


def assert_converged(cluster, db):
    pos = cluster.wait_replicated(db)
    checksum = int(pos.split("/")[1], 16)
    p, r = cluster.primary, cluster.replica
    primary = logical_bytes(p.path(db))
    assert primary == logical_bytes(r.path(db))
    assert logical_checksum(p.path(db)) == checksum
    ok = subprocess.run(["sqlite3", str(r.path(db)), "PRAGMA integrity_check"],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ok"
    return int(pos.split("/")[0], 16)


def last_ltx_header(node, db):
    ltx = sorted((node.dir / ".litefs" / "dbs" / db / "ltx").glob("*.ltx"))[-1]
    head = ltx.read_bytes()[:100]
    wal_offset, wal_size, salt1, salt2 = struct.unpack(">qqII", head[48:72])
    return wal_offset, wal_size, salt1, salt2


@pytest.mark.parametrize("sync", ["NORMAL", "FULL"])
def test_wal_commits_replicate(cluster, sync):
    p, r = cluster.primary, cluster.replica
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous={sync}")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
for i in range(300):
    db.execute("BEGIN"); db.execute("INSERT INTO t(v) VALUES (?)", ("row %d" % i,)); db.execute("COMMIT")
db.execute("BEGIN"); db.execute("INSERT INTO t(v) VALUES ('rolled back')"); db.execute("ROLLBACK")
""")
    assert assert_converged(cluster, "app.db") == 1 + 1 + 300  # journal_mode switch, CREATE, rows
    assert r.sqlite("app.db", "SELECT count(*) FROM t WHERE v = 'rolled back'").stdout.strip() == "0"
    wal_offset, wal_size, salt1, salt2 = last_ltx_header(p, "app.db")
    assert wal_offset >= 32 and wal_size > 0 and (salt1 or salt2), "LTX lacks its WAL fields"


def test_wal_auto_checkpoints_and_restarts(cluster):
    p = cluster.primary
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA wal_autocheckpoint=50")
db.execute("PRAGMA journal_size_limit=0")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
for i in range(1500):
    db.execute("INSERT INTO t(v) VALUES (randomblob(?))", (200 + i % 700,))
    if i % 500 == 0:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
""")
    assert assert_converged(cluster, "app.db") == 1502
    assert "outside litefs" not in p.log_text()


def test_switching_journal_modes_on_a_live_database(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES ('delete mode');")
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; INSERT INTO t VALUES ('wal mode');")
    assert_converged(cluster, "app.db")
    p.sqlite("app.db", "PRAGMA journal_mode=DELETE; INSERT INTO t VALUES ('delete again');")
    assert_converged(cluster, "app.db")
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; INSERT INTO t VALUES ('wal again');")
    assert_converged(cluster, "app.db")
    assert r.sqlite("app.db", "SELECT group_concat(x, '|') FROM t").stdout.strip() == \
        "delete mode|wal mode|delete again|wal again"


def test_wal_with_exclusive_locking_is_refused(cluster):
    p = cluster.primary
    res = p.sqlite("app.db", "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;", check=False)
    assert res.returncode != 0
    assert "journal_mode=WAL with locking_mode=EXCLUSIVE is not supported" in res.stderr
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
    res = p.sqlite("app.db", "PRAGMA locking_mode=EXCLUSIVE;", check=False)
    assert "locking_mode=EXCLUSIVE is not supported in WAL mode" in res.stderr


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_replica_readers_see_whole_transactions(cluster, mode):
    """Bank transfers on the primary (the total never changes) while readers
    on the replica — two under LD_PRELOAD, one plain python without the shim,
    one sqlite3 CLI — query in a loop: never a wrong total, never an error,
    and each sees new versions arrive."""
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; {bank.SETUP_SQL}")
    cluster.wait_replicated("app.db")
    seconds = "4"
    env_plain = {k: v for k, v in r.env().items() if k != "LD_PRELOAD"}
    readers = [subprocess.Popen([PYTHON, "-c", bank.READER, str(r.path("app.db")), seconds],
                                env=env, stdout=subprocess.PIPE, text=True)
               for env in (r.env(), r.env(), env_plain)]
    cli_script = ".timeout 10000\n" + "SELECT sum(bal) FROM acct;\n" * 3000
    cli = subprocess.Popen(["sqlite3", str(r.path("app.db"))], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = subprocess.run([PYTHON, "-c", bank.WRITER, str(p.path("app.db")), seconds],
                            env=p.env(), capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr
    cli_out, cli_err = cli.communicate(cli_script, timeout=120)
    for proc in readers:
        out, _ = proc.communicate(timeout=60)
        stats = bank.reader_stats(out)
        assert stats["bad"] == 0 and stats["errors"] == 0, out
        assert stats["reads"] > 0 and stats["versions"] > 1, out
    assert set(cli_out.split()) == {str(bank.TOTAL)}, cli_err
    assert cli_err == ""
    assert_converged(cluster, "app.db")


def test_wal_frames_committed_while_the_sidecar_was_down_are_recovered(cluster):
    """Frames committed without the capture (here: by a process without the
    shim while the sidecar is stopped) are found at restart past the last
    LTX's WAL range and recorded as the next transaction."""
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
    plain = {k: v for k, v in p.env().items() if k != "LD_PRELOAD"}
    # This process keeps a connection open throughout, so no connection
    # closing checkpoints the WAL away: the frames stay in one WAL.
    holder = subprocess.Popen([PYTHON, "-c", f"""
import sqlite3, sys
keep = sqlite3.connect({str(p.path('app.db'))!r})
keep.execute("SELECT count(*) FROM sqlite_master").fetchall()
print("open", flush=True)
sys.stdin.readline()
w = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
w.execute("INSERT INTO t VALUES ('uncaptured 1')")
w.execute("INSERT INTO t VALUES ('uncaptured 2')")
w.close()
print("written", flush=True)
sys.stdin.readline()
"""], env=plain, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        p.sqlite("app.db", "INSERT INTO t VALUES ('captured');")
        cluster.wait_replicated("app.db")
        assert p.stop() == 0
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "written"
        p.start()
        # Both uncaptured commits are recorded together, as one transaction.
        assert assert_converged(cluster, "app.db") == 4
        assert "WAL frames were committed without an LTX; recording them" in p.log_text()
        assert r.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == "3"
    finally:
        holder.communicate("\n", timeout=30)


def test_wal_frames_committed_outside_litefs_are_recorded(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    cluster.wait_replicated("app.db")
    plain = {k: v for k, v in p.env().items() if k != "LD_PRELOAD"}
    holder = subprocess.Popen([PYTHON, "-c", f"""
import sqlite3, sys
keep = sqlite3.connect({str(p.path('app.db'))!r})
keep.execute("SELECT count(*) FROM sqlite_master").fetchall()
w = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None, timeout=10)
w.execute("CREATE TABLE outside(y)")
w.execute("INSERT INTO outside VALUES ('not captured')")
print("written", flush=True)
sys.stdin.readline()
"""], env=plain, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "written"
        p.sqlite("app.db", "INSERT INTO t VALUES (2);")
        assert_converged(cluster, "app.db")
        assert "WAL frames were committed outside litefs; recording every page" in p.log_text()
        assert r.sqlite("app.db", "SELECT y FROM outside").stdout.strip() == "not captured"
    finally:
        holder.communicate("\n", timeout=30)
