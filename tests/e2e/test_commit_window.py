"""The commit window (issue 6, fencing): a write transaction that is open
while its node loses the right to commit must fail at COMMIT — SQLite rolls
it back — instead of committing locally and being lost when the node
resyncs. Checked for a lease that expires (etcd stopped) and for a handoff,
in WAL and rollback-journal mode, with a real etcd on loopback."""

import signal
import struct
import subprocess
import time

import pytest

from etcd_cluster import Etcd, EtcdNode, assert_no_overlap, converged, primary_of, rows
from litefs_cluster import LITEFS, PYTHON, wait_for

DB = "app.db"

# Holds one write transaction open until told to commit, then reports what
# COMMIT returned and whether its row is in the database. With argv[4] =
# "warm", the connection commits a row first, so that the sidecar has
# approved it and the held transaction begins unasked.
OPEN_TRANSACTION = r"""
import sqlite3, sys
path, mode, sync = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(path, isolation_level=None, timeout=5)
c.execute(f"PRAGMA journal_mode={mode}")
c.execute(f"PRAGMA synchronous={sync}")
if sys.argv[4:] == ["warm"]:
    c.execute("INSERT INTO t VALUES('warm', 0)")
c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO t VALUES('pending', 0)")
print("begun", flush=True)
sys.stdin.readline()
try:
    c.execute("COMMIT")
    print("commit ok", flush=True)
except sqlite3.Error as e:
    print("commit err", getattr(e, "sqlite_errorname", "?"), e, flush=True)
    if c.in_transaction:
        c.execute("ROLLBACK")
present = c.execute("SELECT count(*) FROM t WHERE id='pending'").fetchone()[0]
print("present" if present else "absent", flush=True)
"""


class OpenTransaction:
    def __init__(self, node, mode, sync="FULL", warm=False):
        self.proc = subprocess.Popen([PYTHON, "-c", OPEN_TRANSACTION, str(node.path(DB)), mode, sync]
                                     + (["warm"] if warm else []),
                                     env=node.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line == "begun", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def commit(self):
        out, err = self.proc.communicate("commit\n", timeout=30)
        return out.splitlines(), err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def window_open(node):
    """Whether apps on `node` may pass their commit point now (the word the
    sidecar publishes in <dir>/.litefs.window, against CLOCK_MONOTONIC)."""
    data = (node.dir / ".litefs.window").read_bytes()
    until, = struct.unpack_from("<Q", data, 8)
    return until != 0 and time.clock_gettime_ns(time.CLOCK_MONOTONIC) < until


def approvals_generation(node):
    """The commit window's approvals generation (bumped when approvals are
    withdrawn, as a handoff's drain starts)."""
    return struct.unpack_from("<Q", (node.dir / ".litefs.window").read_bytes(), 24)[0]


def txid(node):
    pos = node.pos(DB)
    return int(pos.split("/")[0], 16) if pos else 0


@pytest.fixture
def etcd(tmp_path):
    e = Etcd(tmp_path).start()
    yield e
    e.stop(signal.SIGKILL)


def settle(nodes, expected_rows):
    """The nodes converge on `expected_rows`, no two commit windows
    overlapped, and every sidecar stops cleanly."""
    wait_for(lambda: converged(nodes, DB), 15, interval=0.1, what="the nodes to converge")
    for n in nodes:
        assert rows(n, DB) == expected_rows, n.name
    assert_no_overlap(nodes)
    for n in nodes:
        assert n.stop() == 0


def clean_up(app, nodes):
    if app:
        app.kill()
    for n in nodes:
        n.stop()


def setup_db(primary, mode):
    primary.sqlite(DB, f"PRAGMA journal_mode={mode}; CREATE TABLE t(id TEXT PRIMARY KEY, at REAL);"
                       "INSERT INTO t VALUES('before', 0)")


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_transaction_open_across_lease_expiry_fails_at_commit(tmp_path, etcd, mode):
    primary = EtcdNode(tmp_path, "n0", [etcd.url]).start()
    replica = EtcdNode(tmp_path, "n1", [etcd.url], candidate=False).start()
    nodes = [primary, replica]
    app = None
    try:
        wait_for(primary.is_primary, 10, what="a primary")
        setup_db(primary, mode)
        wait_for(lambda: converged(nodes, DB), 10, what="the replica to receive")
        assert window_open(primary) and not window_open(replica)
        before = txid(primary)

        app = OpenTransaction(primary, mode)  # approved while the lease is good
        etcd.stop(signal.SIGKILL)
        wait_for(lambda: not window_open(primary), 5, interval=0.02,
                 what="the primary's commit window to close")
        lines, err = app.commit()
        assert lines[0].startswith("commit err"), (lines, err)
        assert lines[0].split()[2] in ("SQLITE_BUSY", "SQLITE_READONLY"), lines
        assert lines[-1] == "absent", lines
        assert "refused and rolled back" in err, err

        etcd.start()
        wait_for(primary.is_primary, 15, interval=0.05, what="the primary to take its lease back")
        primary.sqlite(DB, "INSERT INTO t VALUES('after', 1)")
        # Exactly one transaction since: the refused one left no trace.
        assert txid(primary) == before + 1
        settle(nodes, {"before", "after"})
    finally:
        clean_up(app, nodes)


def start_primary_and_candidate(tmp_path, etcd, mode):
    """A primary with the database and a second candidate that has it too."""
    old = EtcdNode(tmp_path, "n0", [etcd.url]).start()
    new = None
    try:
        wait_for(old.is_primary, 10, what="a primary")
        new = EtcdNode(tmp_path, "n1", [etcd.url]).start()
        setup_db(old, mode)
        wait_for(lambda: converged([old, new], DB), 10, what="the replica to receive")
    except BaseException:
        clean_up(None, [n for n in (old, new) if n])
        raise
    return old, new


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_transaction_open_across_handoff_fails_at_commit(tmp_path, etcd, mode):
    old, new = start_primary_and_candidate(tmp_path, etcd, mode)
    nodes = [old, new]
    app = None
    try:
        # synchronous=OFF: SQLite still announces the commit (SQLITE_FCNTL_SYNC)
        # without syncing, and the check still happens.
        app = OpenTransaction(old, mode, sync="OFF")
        p = subprocess.run([str(LITEFS), "promote", "-url", f"http://127.0.0.1:{new.port}"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert primary_of(nodes) is new
        assert not window_open(old)
        lines, err = app.commit()
        assert lines[0].startswith("commit err"), (lines, err)
        assert lines[0].split()[2] == "SQLITE_READONLY", lines
        assert lines[-1] == "absent", lines

        new.sqlite(DB, "INSERT INTO t VALUES('after', 1)")
        settle(nodes, {"before", "after"})
        # The old primary did not record the refused transaction as its own
        # (the new primary would then have resynced it by snapshot).
        assert "sending snapshot" not in new.log_text()
    finally:
        clean_up(app, nodes)


def test_an_unasked_wal_transaction_open_at_a_handoff_commits_during_the_drain(tmp_path, etcd):
    """Once approved, a WAL connection begins its write transactions without
    asking (it only announces them, Begun). A handoff's drain waits for one
    that is open, so it commits before the lease moves and the successor has
    it (its capture, which the app does not wait for, happens before the
    step-down completes)."""
    old, new = start_primary_and_candidate(tmp_path, etcd, "wal")
    nodes = [old, new]
    app = None
    try:
        app = OpenTransaction(old, "wal", warm=True)
        generation = approvals_generation(old)
        promote = subprocess.Popen([str(LITEFS), "promote", "-url", f"http://127.0.0.1:{new.port}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The drain has started (approvals withdrawn); its limit is 2 s.
        wait_for(lambda: approvals_generation(old) != generation, 5, interval=0.005,
                 what="the old primary to start draining")
        assert window_open(old)
        lines, err = app.commit()
        assert lines == ["commit ok", "present"], (lines, err)
        _, perr = promote.communicate(timeout=30)
        assert promote.returncode == 0, perr
        assert primary_of(nodes) is new
        assert "write transactions still open after the drain limit" not in old.log_text()
        settle(nodes, {"before", "warm", "pending"})
    finally:
        clean_up(app, nodes)


def test_a_commit_marked_in_flight_holds_the_step_down_back(tmp_path, etcd):
    """Between its commit window check and its handed-over commit, a
    connection with a connection page marks it instead of taking the
    window's lock; a primary stepping down (SIGTERM) waits for the mark to
    clear before it captures and releases the lease."""
    from test_connection_page import App, COMMITTING
    old, new = start_primary_and_candidate(tmp_path, etcd, "wal")
    try:
        app = App(old)
        app.mark(COMMITTING, 1)
        old.proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            old.proc.wait(timeout=0.5)  # the drain limit is 2 s
        assert old.is_primary()
        app.mark(COMMITTING, 0)
        assert old.proc.wait(timeout=1.2) == 0
        assert "still holds the commit window" not in old.log_text()
        app.close()
        wait_for(new.is_primary, 10, what="the candidate to take over")
    finally:
        clean_up(None, [old, new])
