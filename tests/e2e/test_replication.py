"""Walking skeleton end to end: unmodified SQLite programs commit on a primary
under LD_PRELOAD, a replica's database becomes identical, position files agree,
replica writes fail, and a restarted replica catches up."""

import re
import signal
import subprocess
import threading

import pytest

from litefs_cluster import db_checksum, logical_bytes, wait_for

POS_RE = re.compile(r"^[0-9a-f]{16}/[0-9a-f]{16}\n$")

PY_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] if len(sys.argv) > 1 else {path!r}, timeout=10)
for tx in range({txs}):
    with db:
        db.executemany("INSERT INTO t(tx, n, body) VALUES (?, ?, ?)",
                       [(tx, i, "row %d of tx %d" % (i, tx)) for i in range({rows})])
db.close()
"""


def py_writer(node, db, txs, rows):
    return PY_WRITER.format(path=str(node.path(db)), txs=txs, rows=rows)


def assert_identical(cluster, db):
    pos = cluster.wait_replicated(db)
    assert POS_RE.match(pos), pos
    p, r = cluster.primary, cluster.replica
    assert p.path(db).read_bytes() == r.path(db).read_bytes()
    checksum = int(pos.split("/")[1], 16)
    assert db_checksum(p.path(db)) == checksum
    assert db_checksum(r.path(db)) == checksum
    ok = subprocess.run(["sqlite3", str(r.path(db)), "PRAGMA integrity_check"],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ok", ok.stdout + ok.stderr
    return pos


def test_cli_and_python_commits_replicate(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INT, n INT, body TEXT);")
    p.python(py_writer(p, "app.db", txs=100, rows=10))
    pos = assert_identical(cluster, "app.db")
    # One TXID per transaction: the CREATE, then 100 from Python.
    assert int(pos.split("/")[0], 16) == 101
    rows = r.sqlite("app.db", "SELECT count(*), count(DISTINCT tx) FROM t").stdout.strip()
    assert rows == "1000|100"
    # LiteFS names its LTX files <min>-<max>.ltx under the data dir.
    ltx = sorted((p.dir / ".litefs" / "dbs" / "app.db" / "ltx").glob("*.ltx"))
    assert ltx[-1].name == "0000000000000065-0000000000000065.ltx"
    assert len(ltx) == 101


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_files_kept_in_memory_or_spilled_to_disk_replicate_alike(cluster, mode):
    """Received files up to 64 KiB are verified and applied from memory, larger
    ones through a temp file: transactions on both sides of that size, in one
    stream, all arrive intact and in order."""
    p, r = cluster.primary, cluster.replica
    p.sqlite("mixed.db", f"PRAGMA journal_mode={mode}; CREATE TABLE t(n INTEGER PRIMARY KEY, body BLOB);")
    sizes = [100, 60 * 1024, 70 * 1024, 300, 64 * 1024, 200 * 1024, 10]
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path("mixed.db"))!r}, timeout=10)
for n, size in enumerate({sizes!r}):
    with db:
        db.execute("INSERT INTO t VALUES (?, randomblob(?))", (n, size))
db.close()
""")
    pos = cluster.wait_replicated("mixed.db")
    assert POS_RE.match(pos), pos
    assert logical_bytes(p.path("mixed.db")) == logical_bytes(r.path("mixed.db"))
    got = r.sqlite("mixed.db", "SELECT group_concat(length(body)) FROM t ORDER BY n").stdout.strip()
    assert got == ",".join(str(s) for s in sizes)
    # Both paths were taken: the replica's log holds files on each side of 64 KiB.
    ltx = [f.stat().st_size for f in (r.dir / ".litefs" / "dbs" / "mixed.db" / "ltx").glob("*.ltx")]
    assert min(ltx) < 64 * 1024 < max(ltx)


def test_primary_file_and_info(cluster):
    p, r = cluster.primary, cluster.replica
    assert not (p.dir / ".primary").exists()
    wait_for(lambda: (r.dir / ".primary").exists(), what=".primary on the replica")
    assert (r.dir / ".primary").read_text() == "primary-host\n"
    pi, ri = p.info(), r.info()
    assert pi["isPrimary"] is True and ri["isPrimary"] is False
    assert ri["primary"]["hostname"] == "primary-host"
    assert re.fullmatch(r"LFSC[0-9A-F]{16}", pi["clusterID"])
    wait_for(lambda: r.info().get("clusterID") == pi["clusterID"], what="cluster id adopted")


def test_replica_write_fails_readonly_and_changes_nothing(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    before = assert_identical(cluster, "app.db")
    res = r.sqlite("app.db", "INSERT INTO t VALUES (2);", check=False)
    assert res.returncode != 0
    assert "readonly" in res.stderr, res.stderr
    assert "primary-host" in res.stderr  # the message names the primary
    res = r.python(f"""
import sqlite3
db = sqlite3.connect({str(r.path('app.db'))!r})
try:
    db.execute("INSERT INTO t VALUES (3)"); db.commit()
except sqlite3.OperationalError as e:
    print(e)
""")
    assert "readonly" in res.stdout
    assert r.pos("app.db") == before
    assert r.path("app.db").read_bytes() == p.path("app.db").read_bytes()
    assert r.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == "1"


def test_replica_restart_catches_up(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INT, n INT, body TEXT);")
    p.python(py_writer(p, "app.db", txs=5, rows=3))
    assert_identical(cluster, "app.db")
    assert r.stop() == 0
    p.python(py_writer(p, "app.db", txs=20, rows=3))
    r.start()
    pos = assert_identical(cluster, "app.db")
    assert int(pos.split("/")[0], 16) == 26


def test_a_replica_catching_up_applies_its_backlog_in_batches(cluster):
    """A replica behind its primary applies the files queued for a database
    together: rollback-mode ones as one journaled transaction (one journal
    and one set of syncs for all), WAL ones under one set of locks. The HWM
    frame the primary sends after every file must not split them. (Rollback
    mode, where each apply syncs, so that the backlog is sure to queue up
    while the first files apply; WAL applies may keep pace with the stream.)"""
    mode = "DELETE"
    from test_node_api import metrics
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; "
                       "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INT, n INT, body TEXT);")
    cluster.wait_replicated("app.db")
    assert r.stop() == 0
    p.python(py_writer(p, "app.db", txs=300, rows=1))
    r.start()
    pos = cluster.wait_replicated("app.db", timeout=60)
    assert int(pos.split("/")[0], 16) >= 301
    assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))
    m = metrics(r)
    files = m['litefs_db_apply_count{db="app.db"}']
    applies = m["litefs_apply_duration_seconds_count"]
    assert files >= 300, files
    assert applies <= files / 4, (applies, files)


def test_a_steady_stream_of_rollback_commits_applies_in_paced_batches():
    """Under a steady stream of rollback-mode commits a replica starts an apply
    (a journal and two syncs) at most once per pacing interval (4 ms), so the
    commits arriving meanwhile share one. On tmpfs an apply takes a fraction
    of a millisecond: unpaced, each commit below (one a millisecond or so)
    would go in alone."""
    import tempfile
    from litefs_cluster import Cluster
    from test_node_api import metrics
    with tempfile.TemporaryDirectory(prefix="litefs-paced.", dir="/dev/shm") as root:
        cluster = Cluster(root).start()
        try:
            p, r = cluster.primary, cluster.replica
            p.sqlite("app.db", "PRAGMA journal_mode=DELETE; CREATE TABLE t(n INT);")
            cluster.wait_replicated("app.db")
            m0 = metrics(r)
            p.python(f"""
import sqlite3, time
db = sqlite3.connect({str(p.path("app.db"))!r}, isolation_level=None)
for n in range(300):
    db.execute("INSERT INTO t VALUES (?)", (n,))
    time.sleep(0.001)
""")
            pos = cluster.wait_replicated("app.db")
            assert int(pos.split("/")[0], 16) == 301
            assert logical_bytes(r.path("app.db")) == logical_bytes(p.path("app.db"))
            m = metrics(r)
            files = m['litefs_db_apply_count{db="app.db"}'] - m0['litefs_db_apply_count{db="app.db"}']
            applies = m["litefs_apply_duration_seconds_count"] - m0["litefs_apply_duration_seconds_count"]
            assert files == 300
            assert applies <= files / 2, (applies, files)
        finally:
            cluster.stop()


def test_new_replica_gets_a_snapshot_of_existing_data(cluster, tmp_path):
    from litefs_cluster import Node, free_port
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES ('before');")
    late = Node(tmp_path, "late", free_port(), p.port, candidate=False).start()
    try:
        wait_for(lambda: late.pos("app.db") == p.pos("app.db"), what="late replica caught up")
        assert late.path("app.db").read_bytes() == p.path("app.db").read_bytes()
    finally:
        late.stop()


def test_pos_file_is_never_torn(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INT, n INT, body TEXT);")
    bad = []
    reads = [0]
    done = threading.Event()

    def reader():
        while not done.is_set() and reads[0] < 200000:
            for node in (p, r):
                try:
                    content = (node.dir / "app.db-pos").read_text()
                except FileNotFoundError:
                    continue
                reads[0] += 1
                if not POS_RE.match(content):
                    bad.append(content)

    t = threading.Thread(target=reader)
    t.start()
    try:
        p.python(py_writer(p, "app.db", txs=100, rows=1))
        cluster.wait_replicated("app.db")
    finally:
        done.set()
        t.join(30)
    assert reads[0] > 0
    assert bad == []


def test_databases_outside_dir_pass_through(cluster, tmp_path):
    other = tmp_path / "elsewhere.db"
    res = subprocess.run(["sqlite3", str(other), "CREATE TABLE t(x); INSERT INTO t VALUES (1);"],
                         env=cluster.replica.env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not (cluster.replica.dir / "elsewhere.db-pos").exists()


@pytest.mark.parametrize("mode", ["MEMORY", "OFF"])
def test_uncapturable_journal_modes_are_refused(cluster, mode):
    p = cluster.primary
    res = p.sqlite("app.db", f"PRAGMA journal_mode={mode};", check=False)
    assert res.returncode != 0
    assert f"journal_mode={mode} is not supported" in res.stderr, res.stderr
    # The database stays in rollback mode and keeps replicating.
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    assert p.sqlite("app.db", "PRAGMA journal_mode;").stdout.strip() == "delete"
    assert_identical(cluster, "app.db")


def test_rollback_is_not_replicated(cluster):
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    before = assert_identical(cluster, "app.db")
    p.sqlite("app.db", "BEGIN; INSERT INTO t VALUES (2); ROLLBACK;")
    p.sqlite("app.db", "BEGIN IMMEDIATE; COMMIT;")
    assert p.pos("app.db") == before
    p.sqlite("app.db", "INSERT INTO t VALUES (3);")
    after = assert_identical(cluster, "app.db")
    assert int(after.split("/")[0], 16) == int(before.split("/")[0], 16) + 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_sidecar_restart_without_app_restart(cluster, sig):
    """No sidecar: writes fail with SQLITE_BUSY within the busy timeout, reads keep
    working; once the sidecar is back the same connection writes again. A
    killed sidecar says nothing: the app learns it from the kernel's mark on
    the sidecar lock (vfs/connection_page.h)."""
    import subprocess as sp
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    app = sp.Popen([
        "/usr/bin/python3", "-u", "-c", f"""
import sqlite3, sys, time
db = sqlite3.connect({str(p.path('app.db'))!r}, timeout=0.2, isolation_level=None)
for line in sys.stdin:
    cmd = line.strip()
    try:
        if cmd == "write":
            db.execute("INSERT INTO t VALUES (2)")
            print("ok", flush=True)
        elif cmd == "read":
            print("rows", db.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
    except sqlite3.OperationalError as e:
        print("error", e, flush=True)
"""], stdin=sp.PIPE, stdout=sp.PIPE, stderr=sp.PIPE, text=True, env=p.env())

    def ask(cmd):
        app.stdin.write(cmd + "\n")
        app.stdin.flush()
        return app.stdout.readline().strip()

    try:
        assert ask("write") == "ok"
        p.stop(sig)
        assert ask("write") == "error database is locked"
        assert ask("read") == "rows 2"
        p.start()
        assert ask("write") == "ok"
        assert ask("read") == "rows 3"
    finally:
        app.stdin.close()
        app.wait(10)
    pos = cluster.wait_replicated("app.db")
    assert int(pos.split("/")[0], 16) == 4


def test_commit_outside_litefs_is_not_lost(cluster):
    """A write by a process without liblitefs is picked up at the next capture
    (the change counter jumped), so the replica still converges."""
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    cluster.wait_replicated("app.db")
    # Pages the next captured transaction does not touch (a new table).
    plain = subprocess.run(["sqlite3", str(p.path("app.db")),
                            "CREATE TABLE t2(y); INSERT INTO t2 VALUES ('outside');"],
                           capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    p.sqlite("app.db", "INSERT INTO t VALUES (3);")
    assert_identical(cluster, "app.db")
    r = cluster.replica
    assert r.sqlite("app.db", "SELECT group_concat(x) FROM t").stdout.strip() == "1,3"
    assert r.sqlite("app.db", "SELECT y FROM t2").stdout.strip() == "outside"
    assert "changed outside litefs" in p.log_text()


def test_lag_file(cluster):
    """<dir>/.lag as LiteFS prints it (printf "%+010d\\n" milliseconds: 11
    bytes up to +999999999); zero on the primary; small on a connected
    replica; growing once the primary is gone (the replica keeps its last
    primary timestamp)."""
    p, r = cluster.primary, cluster.replica
    wait_for(lambda: (p.dir / ".lag").exists(), what=".lag on the primary")
    assert (p.dir / ".lag").read_text() == "+000000000\n"

    def replica_lag():
        text = (r.dir / ".lag").read_text()
        assert re.fullmatch(r"[+-]\d{9,10}\n", text), text
        return int(text)
    wait_for(lambda: replica_lag() < 3000, what="a small lag on the replica")
    p.stop()
    wait_for(lambda: replica_lag() > 2500, timeout=10, what="the lag to grow without a primary")


def test_replica_wal_stays_short_under_sustained_writes(cluster):
    """A replica's WAL is checkpointed (SQLite's PASSIVE checkpoint, between
    two applies) every 1,000 frames, so the checkpoint folds every frame and
    the next apply starts the WAL over: under a steady stream of commits the
    file stays near 1,000 frames instead of growing with the stream. (The
    checkpoint once ran on a connection that had not opened the WAL yet and
    did nothing.)"""
    p, r = cluster.primary, cluster.replica
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path("app.db"))!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE t(x)")
for i in range(5000):
    db.execute("INSERT INTO t VALUES (?)", (i,))
""")
    cluster.wait_replicated("app.db", timeout=60)
    frame = 4096 + 24
    wal = (r.dir / "app.db-wal").stat().st_size
    assert wal < 2500 * frame, f"replica WAL grew to {wal // frame} frames"
    assert r.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == "5000"



def test_a_node_that_is_not_the_primary_refuses_the_stream_with_its_reason(cluster, tmp_path):
    """A replica pointed at a node that is not the primary reports that node's
    answer (HTTP 503 and its reason), not its error text read as stream
    frames, and keeps retrying."""
    from litefs_cluster import Node, free_port
    r = cluster.replica
    lost = Node(tmp_path, "lost", free_port(), r.port, candidate=False).start()
    try:
        wait_for(lambda: "the primary answered HTTP 503: lease expired" in lost.log_text(), 10,
                 what="the refusal to be reported")
        assert "bad stream" not in lost.log_text()
    finally:
        lost.stop()
