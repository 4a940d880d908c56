"""Write transactions after a connection's first approved Begin start without
a round trip (vfs/commit_window.h): the VFS only announces them (Begun). The
sidecar must still know who is inside a write transaction."""

import signal
import subprocess

import pytest

from litefs_cluster import PYTHON, wait_for

# argv: db path, journal mode. Commits once (the sidecar approves a Begin),
# then opens a second write transaction, which begins unasked, writes a row
# and never commits.
WRITER_LEFT_OPEN = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute(f"PRAGMA journal_mode={sys.argv[2]}")
db.execute("INSERT INTO t VALUES ('committed')")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO t VALUES ('never committed')")
print("inside", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_a_writer_killed_inside_an_unasked_transaction_is_noticed(cluster, mode):
    p, r = cluster.primary, cluster.replica
    db = "app.db"
    p.sqlite(db, f"PRAGMA journal_mode={mode}; CREATE TABLE t(x TEXT);")
    before = int(cluster.wait_replicated(db).split("/")[0], 16)
    writer = subprocess.Popen([PYTHON, "-c", WRITER_LEFT_OPEN, str(p.path(db)), mode],
                              env=p.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "inside", writer.stderr.read()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        # The sidecar learnt of the transaction from Begun alone, so the
        # vanished connection makes it check the database.
        wait_for(lambda: "a writer disconnected mid-transaction" in p.log_text(), timeout=10,
                 what="the sidecar to notice the writer that died inside its transaction")
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    p.sqlite(db, "INSERT INTO t VALUES ('after')")
    # Two transactions, no more: 'committed' and 'after' (a WAL commit is
    # recorded just after COMMIT returns, so wait for it).
    wait_for(lambda: int((p.pos(db) or "0/0").split("/")[0], 16) == before + 2,
             what="the primary to record 'committed' and 'after'")
    pos = cluster.wait_replicated(db)
    assert int(pos.split("/")[0], 16) == before + 2
    for n in (p, r):
        assert n.sqlite(db, "SELECT x FROM t ORDER BY rowid").stdout.split() == ["committed", "after"]
    assert pos == r.pos(db)
