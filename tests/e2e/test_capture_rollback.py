"""Capture of every way SQLite commits in rollback-journal modes: each journal
mode and synchronous level, operations that rewrite or shrink the file,
exclusive locking, mmap, temp databases, and several processes and threads
writing one database."""

import select
import signal
import subprocess

import pytest

from litefs_cluster import PYTHON, logical_bytes, logical_checksum, wait_for


def assert_converged(cluster, db):
    """Waits for the replica, checks both files against the position; returns the TXID."""
    pos = cluster.wait_replicated(db)
    p, r = cluster.primary, cluster.replica
    checksum = int(pos.split("/")[1], 16)
    assert logical_checksum(p.path(db)) == checksum, "primary database does not match its position"
    assert logical_bytes(r.path(db)) == logical_bytes(p.path(db))
    ok = subprocess.run(["sqlite3", str(r.path(db)), "PRAGMA integrity_check"],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ok"
    return int(pos.split("/")[0], 16)


def replica_query(cluster, db, sql):
    return subprocess.run(["sqlite3", str(cluster.replica.path(db)), sql],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("mode", ["DELETE", "TRUNCATE", "PERSIST"])
@pytest.mark.parametrize("sync", ["OFF", "NORMAL", "FULL", "EXTRA"])
def test_journal_modes_and_sync_levels(cluster, mode, sync):
    p = cluster.primary
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; PRAGMA synchronous={sync};"
                       "CREATE TABLE t(x); INSERT INTO t VALUES (1);"
                       "BEGIN; INSERT INTO t VALUES (2); ROLLBACK;"
                       "INSERT INTO t VALUES (3); UPDATE t SET x = x * 10;")
    # CREATE, INSERT 1, INSERT 3, UPDATE: the rolled-back INSERT has no TXID.
    assert assert_converged(cluster, "app.db") == 4
    assert replica_query(cluster, "app.db", "SELECT group_concat(x) FROM t") == "10,30"


def test_vacuum_shrinks_the_replica(cluster):
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); "
                       "INSERT INTO t SELECT randomblob(2000) FROM generate_series(1, 500);")
    assert_converged(cluster, "app.db")
    big = p.path("app.db").stat().st_size
    p.sqlite("app.db", "DELETE FROM t WHERE rowid > 10; VACUUM;")
    assert_converged(cluster, "app.db")
    assert cluster.replica.path("app.db").stat().st_size < big // 10


def test_page_size_change_with_vacuum(cluster):
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); "
                       "INSERT INTO t SELECT hex(randomblob(100)) FROM generate_series(1, 300);")
    assert_converged(cluster, "app.db")
    p.sqlite("app.db", "PRAGMA page_size=1024; VACUUM;")
    assert_converged(cluster, "app.db")
    assert replica_query(cluster, "app.db", "PRAGMA page_size") == "1024"
    p.sqlite("app.db", "INSERT INTO t VALUES ('after');")
    assert_converged(cluster, "app.db")
    assert replica_query(cluster, "app.db", "SELECT count(*) FROM t") == "301"


@pytest.mark.parametrize("vacuum", ["FULL", "INCREMENTAL"])
def test_auto_vacuum_truncation(cluster, vacuum):
    p = cluster.primary
    p.sqlite("app.db", f"PRAGMA auto_vacuum={vacuum}; CREATE TABLE t(x); "
                       "INSERT INTO t SELECT randomblob(3000) FROM generate_series(1, 200);")
    assert_converged(cluster, "app.db")
    before = p.path("app.db").stat().st_size
    p.sqlite("app.db", "DELETE FROM t WHERE rowid > 20;")
    if vacuum == "INCREMENTAL":
        p.sqlite("app.db", "PRAGMA incremental_vacuum;")
    assert_converged(cluster, "app.db")
    assert p.path("app.db").stat().st_size < before // 2
    assert cluster.replica.path("app.db").stat().st_size == p.path("app.db").stat().st_size


def test_exclusive_locking_mode(cluster):
    p = cluster.primary
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("CREATE TABLE t(x)")
for i in range(20):
    db.execute("BEGIN"); db.execute("INSERT INTO t VALUES (?)", (i,)); db.execute("COMMIT")
db.execute("BEGIN"); db.execute("INSERT INTO t VALUES (-1)"); db.execute("ROLLBACK")
db.execute("INSERT INTO t VALUES (99)")
""")
    assert assert_converged(cluster, "app.db") == 22
    assert replica_query(cluster, "app.db", "SELECT count(*), sum(x) FROM t") == "21|289"
    # The change counter moves once per exclusive lock, not per commit: each
    # capture still takes only its commit's pages.
    assert "recording every page" not in p.log_text()


def test_mmap_reads_and_writes(cluster):
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA mmap_size=268435456; CREATE TABLE t(x); "
                       "INSERT INTO t SELECT hex(randomblob(500)) FROM generate_series(1, 2000);"
                       "UPDATE t SET x = 'y' WHERE rowid % 7 = 0;")
    assert_converged(cluster, "app.db")
    assert replica_query(cluster, "app.db", "SELECT count(*) FROM t WHERE x = 'y'") == "285"


def test_temp_databases_are_untouched(cluster):
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA temp_store=FILE; CREATE TABLE t(x); "
                       "CREATE TEMP TABLE scratch(y); "
                       "INSERT INTO scratch SELECT randomblob(1000) FROM generate_series(1, 3000);"
                       "INSERT INTO t SELECT count(*) FROM scratch;")
    assert assert_converged(cluster, "app.db") == 2
    assert replica_query(cluster, "app.db", "SELECT x FROM t") == "3000"
    assert replica_query(cluster, "app.db", "SELECT count(*) FROM sqlite_master") == "1"


def test_attached_managed_databases(cluster):
    p = cluster.primary
    p.sqlite("a.db", "CREATE TABLE t(x);")
    p.sqlite("b.db", "CREATE TABLE u(y);")
    p.sqlite("a.db", f"ATTACH '{p.path('b.db')}' AS b; "
                     "BEGIN; INSERT INTO t VALUES (1); INSERT INTO b.u VALUES (2); COMMIT;")
    assert assert_converged(cluster, "a.db") == 2
    assert assert_converged(cluster, "b.db") == 2
    assert replica_query(cluster, "b.db", "SELECT y FROM u") == "2"


def test_processes_and_threads_writing_one_database(cluster):
    """Four processes with four threads each: every commit gets its own TXID,
    in order, and none is lost."""
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INT);")
    writer = f"""
import sqlite3, sys, threading
def work(tag):
    db = sqlite3.connect({str(p.path('app.db'))!r}, timeout=30, isolation_level=None)
    for n in range(25):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t(who, n) VALUES (?, ?)", (tag, n))
        db.execute("COMMIT")
threads = [threading.Thread(target=work, args=(sys.argv[1] + str(i),)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""
    procs = [subprocess.Popen([PYTHON, "-c", writer, f"p{i}-"], env=p.env(),
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert assert_converged(cluster, "app.db") == 1 + 4 * 4 * 25
    assert replica_query(cluster, "app.db", "SELECT count(*), count(DISTINCT who) FROM t") == "400|16"
    # One LTX file per commit, each continuing the previous checksum.
    ltx_dir = p.dir / ".litefs" / "dbs" / "app.db" / "ltx"
    assert len(list(ltx_dir.glob("*.ltx"))) == 401
    # Each capture found exactly its commit's pages: no writer overwrote a
    # commit whose app did not wait for its capture.
    assert "recording every page" not in p.log_text()


# A writer that keeps its connection open and commits one row per line it
# reads, printing "committed <row>" once COMMIT has returned.
KEPT_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA synchronous=" + sys.argv[2])
for line in sys.stdin:
    db.execute("INSERT INTO t VALUES (?)", (line.strip(),))
    print("committed", line.strip(), flush=True)
"""


def txid_of(node, db="app.db"):
    return int(node.pos(db).split("/")[0], 16)


class KeptWriter:
    def __init__(self, node, db, sync="FULL", env=None):
        self.proc = subprocess.Popen([PYTHON, "-u", "-c", KEPT_WRITER, str(node.path(db)), sync],
                                     env=env or node.env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def commit(self, row):
        self.proc.stdin.write(row + "\n")
        self.proc.stdin.flush()

    def committed(self, timeout):
        """What the writer printed next, or None if nothing within `timeout` s."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else None

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        err = self.proc.stderr.read()
        assert self.proc.returncode == 0, err


def writer_after_first_commit(cluster):
    """A kept writer on a new DELETE-mode app.db whose first commit, a1, is
    captured (so its next ones are handed over without waiting); returns the
    writer and a1's TXID."""
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=DELETE; CREATE TABLE t(x);")
    a1 = assert_converged(cluster, "app.db") + 1
    w = KeptWriter(p, "app.db")
    try:
        w.commit("a1")
        assert w.committed(30) == "committed a1"
        wait_for(lambda: txid_of(p) == a1, what="the capture of a1")
    except BaseException:
        w.proc.kill()
        raise
    return w, a1


def test_commit_returns_before_its_capture_and_the_next_write_waits_for_it(cluster):
    """A rollback-mode COMMIT does not wait for the sidecar; the next write
    transaction does, before it overwrites anything, until the sidecar has
    captured the previous commit's pages."""
    p = cluster.primary
    w, before = writer_after_first_commit(cluster)
    try:
        p.proc.send_signal(signal.SIGSTOP)
        try:
            w.commit("a2")
            assert w.committed(30) == "committed a2"  # with the sidecar stopped
            w.commit("a3")
            assert w.committed(1.5) is None  # a2 is not captured: a3 must not overwrite it
        finally:
            p.proc.send_signal(signal.SIGCONT)
        assert w.committed(30) == "committed a3"
    finally:
        w.close()
    assert assert_converged(cluster, "app.db") == before + 2
    assert replica_query(cluster, "app.db", "SELECT group_concat(x) FROM t") == "a1,a2,a3"
    assert "recording every page" not in p.log_text()


@pytest.mark.parametrize("sync,wait_for_capture", [("EXTRA", None), ("FULL", "1")])
def test_synchronous_extra_or_wait_for_capture_keep_commit_waiting(cluster, sync, wait_for_capture):
    """With synchronous=EXTRA (SQLite makes every commit durable before it
    returns) or LITEFS_WAIT_FOR_CAPTURE=1, COMMIT returns once the sidecar
    has captured the transaction: `<db>-pos` names it by then."""
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=DELETE; CREATE TABLE t(x);")
    before = assert_converged(cluster, "app.db") + 1
    env = p.env()
    if wait_for_capture:
        env["LITEFS_WAIT_FOR_CAPTURE"] = wait_for_capture
    w = KeptWriter(p, "app.db", sync, env)
    try:
        w.commit("a1")
        assert w.committed(30) == "committed a1"
        assert txid_of(p) == before
        p.proc.send_signal(signal.SIGSTOP)
        try:
            w.commit("a2")
            assert w.committed(1.5) is None
        finally:
            p.proc.send_signal(signal.SIGCONT)
        assert w.committed(30) == "committed a2"
        assert txid_of(p) == before + 1
    finally:
        w.close()


def test_renaming_the_database_away_replicates_as_a_deletion(cluster, tmp_path):
    """A database moved out of the managed directory is gone there: the
    deletion marker replicates as for an unlink."""
    from litefs_cluster import wait_for
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    before = int(cluster.wait_replicated("app.db").split("/")[0], 16)
    p.path("app.db").rename(tmp_path / "moved.db")
    pos = wait_for(lambda: (p.pos("app.db") or "").startswith(f"{before + 1:016x}") and p.pos("app.db"),
                   what="the deletion marker")
    assert pos == f"{before + 1:016x}/8000000000000000\n"
    wait_for(lambda: r.pos("app.db") == pos, what="the replica to apply the deletion")
    assert not r.path("app.db").exists()


@pytest.mark.parametrize("mode", ["DELETE", "WAL"])
def test_deleting_the_database_replicates(cluster, mode):
    """Deleting the file on the primary records a deletion marker (commit 0);
    the replica removes its files; recreating the name starts over."""
    from litefs_cluster import wait_for
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    before = int(cluster.wait_replicated("app.db").split("/")[0], 16)
    for suffix in ("", "-wal", "-shm", "-journal"):
        (p.dir / f"app.db{suffix}").unlink(missing_ok=True)
    pos = wait_for(lambda: (p.pos("app.db") or "").startswith(f"{before + 1:016x}") and p.pos("app.db"),
                   what="the deletion marker")
    assert pos == f"{before + 1:016x}/8000000000000000\n"
    wait_for(lambda: r.pos("app.db") == pos, what="the replica to apply the deletion")
    assert not r.path("app.db").exists()
    # The name can be used again; the new database replicates from scratch.
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; CREATE TABLE u(y); INSERT INTO u VALUES ('new');")
    assert_converged(cluster, "app.db")
    assert replica_query(cluster, "app.db", "SELECT y FROM u") == "new"


def test_deleting_the_database_while_an_app_has_it_open_replicates(cluster):
    """The file's link count dropping is the deletion, not the last
    descriptor closing: an app still holding the database does not hold the
    marker back."""
    p, r = cluster.primary, cluster.replica
    w, before = writer_after_first_commit(cluster)
    try:
        cluster.wait_replicated("app.db")
        p.path("app.db").unlink()
        pos = wait_for(lambda: (p.pos("app.db") or "").startswith(f"{before + 1:016x}") and p.pos("app.db"),
                       what="the deletion marker while the writer is open")
        assert pos == f"{before + 1:016x}/8000000000000000\n"
        wait_for(lambda: r.pos("app.db") == pos, what="the replica to apply the deletion")
        assert not r.path("app.db").exists()
    finally:
        w.close()


def inotify_watches(pid):
    """(inode, mask) of every inotify watch the process holds."""
    import os
    import re
    watches = []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = open(f"/proc/{pid}/fdinfo/{fd}").read()
        except FileNotFoundError:
            continue
        for m in re.finditer(r"^inotify wd:\w+ ino:(\w+) sdev:\w+ mask:(\w+)", text, re.M):
            watches.append((int(m.group(1), 16), int(m.group(2), 16)))
    return watches


def test_journal_deletions_do_not_wake_the_primary(cluster):
    """The primary watches each database file for its deletion, not the
    directory: a directory watch for deletions reports the journal SQLite
    deletes at every DELETE-mode commit, a wake-up of the sidecar the app
    pays for."""
    import os
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    cluster.wait_replicated("app.db")
    db_ino, dir_ino = os.stat(p.path("app.db")).st_ino, os.stat(p.dir).st_ino
    watched = wait_for(lambda: [ino for ino, _ in inotify_watches(p.proc.pid)] or None,
                       what="the primary's watch of app.db")
    assert db_ino in watched
    assert dir_ino not in watched


HOLDING_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO t VALUES ('never committed')")
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_commit_recorded_by_recovery_is_not_captured_again(cluster):
    """A writer vanishing mid-transaction makes the sidecar recover the
    database; another app's commit handed over just before that recovery,
    whose message the sidecar reads after it, is then already recorded:
    capturing it again would add a TXID that changes nothing (or, with the
    next writer already writing, pages of a transaction that had not
    committed yet)."""
    p = cluster.primary
    w, before = writer_after_first_commit(cluster)
    holder = None
    try:
        assert assert_converged(cluster, "app.db") == before
        holder = subprocess.Popen([PYTHON, "-u", "-c", HOLDING_WRITER, str(p.path("app.db"))],
                                  env=p.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([holder.stdout], [], [], 30)
        assert ready and holder.stdout.readline().strip() == "holding"
        p.proc.send_signal(signal.SIGSTOP)
        try:
            # Gone inside its write transaction: the sidecar, reading the
            # end of its connection first, will recover.
            holder.kill()
            holder.wait(timeout=30)
            w.commit("a2")  # handed over while the sidecar is stopped
            assert w.committed(30) == "committed a2"
        finally:
            p.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "a writer disconnected mid-transaction" in p.log_text(), what="the recovery")
        # A commit after both: once it is captured (the position names the
        # file's content), the recovery and a2's message are behind the sidecar.
        w.commit("a3")
        assert w.committed(30) == "committed a3"
        wait_for(lambda: int(p.pos("app.db").split("/")[1], 16) == logical_checksum(p.path("app.db")),
                 what="the capture of a3")
        assert assert_converged(cluster, "app.db") == before + 2  # a2 and a3, once each
        assert replica_query(cluster, "app.db", "SELECT group_concat(x) FROM t") == "a1,a2,a3"
    finally:
        if holder and holder.poll() is None:
            holder.kill()
        w.close()
