"""WAL mode end to end: commits captured from WAL frames (with LiteFS's WAL
fields in each LTX), auto-checkpoints and WAL restarts, switching journal
modes on a live database, and replicas applying into WAL-mode databases
while their readers keep reading."""

import struct
import subprocess
import time

import pytest

import bank

from litefs_cluster import PYTHON, logical_bytes, logical_checksum, wait_for


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


def wait_txid(node, db, txid):
    """WAL commits are captured just after COMMIT returns: wait for it when no
    close flushed them (another connection stays open)."""
    return wait_for(lambda: node.pos(db) and int(node.pos(db).split("/")[0], 16) == txid, timeout=10,
                    what=f"{db} on {node.name} to reach TXID {txid}")


def ltx_ranges(node, db):
    """(min TXID, max TXID) of every LTX file in the node's log, in order."""
    names = sorted(f.name for f in (node.dir / ".litefs" / "dbs" / db / "ltx").glob("*.ltx"))
    return [tuple(int(part, 16) for part in name[:-len(".ltx")].split("-")) for name in names]


def assert_chain(ranges, first, last):
    """The files from TXID `first` on follow each other without a gap or an
    overlap and end at `last`."""
    tail = [rg for rg in ranges if rg[1] >= first]
    assert tail and tail[0][0] == first and tail[-1][1] == last, (tail[:3], tail[-3:])
    for prev, nxt in zip(tail, tail[1:]):
        assert nxt[0] == prev[1] + 1, (prev, nxt)


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
    LTX's WAL range and recorded as the next transactions: one TXID per
    commit, in one LTX file (TXIDs 4-5)."""
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
        wait_txid(p, "app.db", 3)
        cluster.wait_replicated("app.db")
        assert p.stop() == 0
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "written"
        p.start()
        # Both uncaptured commits are recorded, each with its own TXID.
        assert assert_converged(cluster, "app.db") == 5
        assert ltx_ranges(p, "app.db")[-1] == (4, 5)
        assert ltx_ranges(r, "app.db")[-1] == (4, 5)
        assert "WAL frames were committed without an LTX; recording them" in p.log_text()
        assert r.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == "3"
    finally:
        holder.communicate("\n", timeout=30)


def test_wal_frames_committed_outside_litefs_are_recorded_with_a_txid_each(cluster):
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
    before = int(p.pos("app.db").split("/")[0], 16)
    try:
        assert holder.stdout.readline().strip() == "written"
        p.sqlite("app.db", "INSERT INTO t VALUES (2);")
        # The outside commits' frames are still in the WAL: each gets its own
        # TXID, in WAL order, before ours, all three in one file. (Captured
        # just after COMMIT returned: the holder's connection keeps the CLI's
        # close from flushing.)
        wait_txid(p, "app.db", before + 3)
        assert assert_converged(cluster, "app.db") == before + 3
        assert ltx_ranges(p, "app.db")[-1] == (before + 1, before + 3)
        assert "recording every page" not in p.log_text()
        assert r.sqlite("app.db", "SELECT y FROM outside").stdout.strip() == "not captured"
    finally:
        holder.communicate("\n", timeout=30)


def test_async_commits_survive_checkpoints_that_reset_the_wal(cluster):
    """WAL + NORMAL commits are handed over without waiting: their frames
    wait in the WAL until the sidecar reads them. A TRUNCATE checkpoint, a
    writer restarting the WAL after an automatic checkpoint, and the last
    connection deleting the WAL at close would overwrite them first; the VFS
    has the sidecar capture everything before it lets them. Every commit
    keeps its own TXID, in order (commits captured together share a file)."""
    p, r = cluster.primary, cluster.replica
    path = str(p.path("app.db"))
    p.python(f"""
import sqlite3
db = sqlite3.connect({path!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB)")
""")
    before = int(cluster.wait_replicated("app.db").split("/")[0], 16)
    p.python(f"""
import sqlite3
db = sqlite3.connect({path!r}, isolation_level=None)
db.execute("PRAGMA synchronous=NORMAL")
db.execute("PRAGMA wal_autocheckpoint=50")
n = 0
for round in range(3):
    for i in range(300):
        n += 1
        db.execute("INSERT INTO t VALUES (?, randomblob(500))", (n,))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
""")
    assert assert_converged(cluster, "app.db") == before + 900
    assert_chain(ltx_ranges(p, "app.db"), before + 1, before + 900)
    # Closing the last connection flushed: the files are durable, no marker
    # asks recovery to verify them (capture_durability.h).
    assert not (p.dir / ".litefs" / "dbs" / "app.db" / "ltx-unsynced").exists()
    log = p.log_text()
    assert "capture failed" not in log and "recording every page" not in log, log
    assert r.sqlite("app.db", "SELECT count(*), sum(n) FROM t").stdout.strip() == f"900|{900 * 901 // 2}"


def commit_bench_messages(cluster, name, sync, writers=1):
    """`writers` commit_bench processes writing WAL + `sync` commits to `name`
    for a second; checks that every commit is recorded, once, in order, and
    returns the commits and the commit messages the apps sent for them."""
    from litefs_cluster import BUILD
    from test_node_api import metrics
    p = cluster.primary
    bench = str(BUILD / "tests" / "bench" / "commit_bench")
    db = str(p.path(name))
    subprocess.run([bench, db, "WAL", sync, "0.05"], env=p.env(), check=True, capture_output=True)
    before = int(cluster.wait_replicated(name).split("/")[0], 16)
    messages_before = metrics(p)[f'litefs_db_commit_message_count{{db="{name}"}}']
    procs = [subprocess.Popen([bench, db, "WAL", sync, "1"], env=p.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(writers)]
    commits = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        commits += int(dict(line.split() for line in out.splitlines())["tx"])
    assert assert_converged(cluster, name) == before + commits
    assert_chain(ltx_ranges(p, name), before + 1, before + commits)
    m = metrics(p)
    assert m[f'litefs_db_commit_count{{db="{name}"}}'] >= commits
    return commits, m[f'litefs_db_commit_message_count{{db="{name}"}}'] - messages_before


@pytest.mark.parametrize("writers", [1, 3])
def test_fast_async_commits_ride_on_an_armed_capture(cluster, writers):
    """Under load the sidecar paces its captures and keeps them armed in the
    commit window; an app's async WAL commit made meanwhile sends no
    message (its connection page tells the sidecar it is writing). Every
    commit is still recorded, once, in order — also with several processes
    committing at once, each deciding on its own whether to announce."""
    commits, messages = commit_bench_messages(cluster, "fast.db", "NORMAL", writers)
    assert commits > 1000, commits  # enough to be under load
    assert messages < commits / 2, (messages, commits)


def test_a_capture_lingers_armed_while_commits_keep_coming(cluster):
    """Synced WAL commits come too slowly for several to wait for one capture,
    yet each one that finds a capture armed sends nothing: after capturing, it
    stays armed and looks at the wal-index again while commits keep coming.
    Without that, about every other commit sent its message."""
    commits, messages = commit_bench_messages(cluster, "steady.db", "FULL")
    assert commits > 200, commits
    assert messages < commits / 10, (messages, commits)


def new_wal_table(cluster, name):
    """A WAL database with an empty table t(n) on the primary, replicated:
    its path and the TXID it is at."""
    p = cluster.primary
    path = str(p.path(name))
    p.python(f"""
import sqlite3
db = sqlite3.connect({path!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t(n INTEGER PRIMARY KEY)")
""")
    return path, int(cluster.wait_replicated(name).split("/")[0], 16)


def test_commits_absorbed_by_an_armed_capture_are_recorded_while_the_writer_stays_open(cluster):
    """No close, no flush: the commits that sent no message reach the log
    through the capture that was armed when they were made."""
    from test_node_api import metrics
    p = cluster.primary
    path, before = new_wal_table(cluster, "open.db")
    messages_before = metrics(p)['litefs_db_commit_message_count{db="open.db"}']
    writer = subprocess.Popen([PYTHON, "-c", f"""
import sqlite3, sys, time
db = sqlite3.connect({path!r}, isolation_level=None)
db.execute("PRAGMA synchronous=NORMAL")
n, end = 0, time.monotonic() + 1
while time.monotonic() < end:
    n += 1
    db.execute("INSERT INTO t VALUES (?)", (n,))
print(n, flush=True)
sys.stdin.readline()  # stays open until told
"""], env=p.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        commits = int(writer.stdout.readline())
        assert commits > 1000, commits
        wait_txid(p, "open.db", before + commits)
        messages = metrics(p)['litefs_db_commit_message_count{db="open.db"}'] - messages_before
        assert messages < commits, (messages, commits)
    finally:
        writer.communicate("\n", timeout=30)
    assert_chain(ltx_ranges(p, "open.db"), before + 1, before + commits)


def test_the_last_commits_of_each_burst_are_recorded_though_they_sent_no_message(cluster):
    """A capture stays armed until it has read the wal-index once more after
    disarming: a commit published between its first read and the disarm sent
    no message and is found by the second read. Each burst ends with no
    later commit to announce it, so a missed one shows as a position that
    stops short."""
    p = cluster.primary
    path, before = new_wal_table(cluster, "bursts.db")
    writer = subprocess.Popen([PYTHON, "-c", f"""
import sqlite3, sys
db = sqlite3.connect({path!r}, isolation_level=None)
db.execute("PRAGMA synchronous=NORMAL")
n = 0
for burst in range(25):
    for _ in range(200):
        n += 1
        db.execute("INSERT INTO t VALUES (?)", (n,))
    print(n, flush=True)
    sys.stdin.readline()  # the test checked the burst
"""], env=p.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(25):
            commits = int(writer.stdout.readline())
            wait_txid(p, "bursts.db", before + commits)
            writer.stdin.write("\n")
            writer.stdin.flush()
    finally:
        writer.communicate(timeout=30)
    assert commits == 25 * 200
    assert_chain(ltx_ranges(p, "bursts.db"), before + 1, before + commits)
