"""Long-running readers on a replica versus the apply (issue 4 item 6), the
policy of docs/architecture.md "Long readers and the apply":

- WAL mode: an apply never waits for readers. A reader keeps its snapshot
  for as long as it holds its read transaction while the replica keeps up
  with the primary; its next transaction sees the new data.
- Rollback mode: an apply needs EXCLUSIVE, waits at most 10 s for current
  readers, then gives up (releasing PENDING), the stream reconnects and the
  same file is applied again; replication of that database resumes once the
  reader ends. New readers wait in their busy handler meanwhile, and get in
  during the second the replica pauses between attempts.

In both modes the long reader and concurrent short readers (with and without
the shim) must only ever see whole transactions (bank total constant)."""

import re
import subprocess

import bank
from litefs_cluster import PYTHON, wait_for

# Holds one read transaction until a line arrives on stdin (at most 120 s),
# reading inside it in a loop. Prints "holding <version>" once it holds, then
# "reads N bad N versions N" at the end.
HOLDER = """
import select, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN")
total, first = db.execute("SELECT sum(bal), max(v) FROM acct, ver").fetchone()
print("holding", first, flush=True)
reads = bad = 0
versions = {first}
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if select.select([sys.stdin], [], [], 0.02)[0]:
        break
    t, v = db.execute("SELECT sum(bal), max(v) FROM acct, ver").fetchone()
    reads += 1
    versions.add(v)
    if t != %d:
        bad += 1
db.execute("COMMIT")
print("reads", reads, "bad", bad, "versions", len(versions), flush=True)
""" % bank.TOTAL

# LockWithin's message when an apply gives up waiting for readers.
GAVE_UP = "waiting for readers of"


def version(node, db):
    return int(node.sqlite(db, "SELECT v FROM ver").stdout.strip())


def start_holder(node, db):
    h = subprocess.Popen([PYTHON, "-c", HOLDER, str(node.path(db))], env=node.env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = h.stdout.readline().split()
    assert line[0] == "holding", line
    return h, int(line[1])


def release(holder):
    out, _ = holder.communicate("\n", timeout=60)
    return bank.reader_stats(out)


def short_readers(node, db, seconds):
    plain = {k: v for k, v in node.env().items() if k != "LD_PRELOAD"}
    return [subprocess.Popen([PYTHON, "-c", bank.READER, str(node.path(db)), str(seconds)],
                             env=env, stdout=subprocess.PIPE, text=True)
            for env in (node.env(), plain)]


def check_short_readers(readers):
    for proc in readers:
        out, _ = proc.communicate(timeout=120)
        stats = bank.reader_stats(out)
        assert stats["bad"] == 0 and stats["errors"] == 0, out
        assert stats["reads"] > 0, out


def transfers(node, db, seconds):
    w = subprocess.run([PYTHON, "-c", bank.WRITER, str(node.path(db)), str(seconds)],
                       env=node.env(), capture_output=True, text=True, timeout=120)
    assert w.returncode == 0, w.stderr


def test_wal_apply_does_not_wait_for_a_long_reader(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode=WAL; {bank.SETUP_SQL}")
    cluster.wait_replicated("app.db")
    holder, held = start_holder(r, "app.db")
    readers = short_readers(r, "app.db", 14)
    # Longer than a rollback-mode apply would wait (10 s), with commits all along.
    transfers(p, "app.db", 12)
    # Caught up while the reader still holds its snapshot.
    pos = cluster.wait_replicated("app.db", timeout=20)
    assert holder.poll() is None
    assert version(r, "app.db") == version(p, "app.db") > held  # new readers see it
    assert GAVE_UP not in r.log_text()
    stats = release(holder)
    assert stats["bad"] == 0 and stats["versions"] == 1, stats  # one snapshot throughout
    assert stats["reads"] > 100, stats
    check_short_readers(readers)
    assert r.pos("app.db") == pos


def test_rollback_apply_gives_up_on_a_long_reader_then_resumes(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode=DELETE; {bank.SETUP_SQL}")
    before = cluster.wait_replicated("app.db")
    holder, held = start_holder(r, "app.db")
    # Short readers (busy timeout 30 s) across two give-ups of the apply.
    readers = short_readers(r, "app.db", 24)
    transfers(p, "app.db", 1)
    target = p.pos("app.db")
    assert target != before
    # The apply waits its 10 s for the reader, gives up and reconnects;
    # meanwhile the replica stays at the position the reader holds.
    wait_for(lambda: r.log_text().count("apply postponed") >= 2, timeout=40, interval=0.1,
             what="the apply to give up on the long reader twice")
    assert holder.poll() is None
    assert r.pos("app.db") == before
    log = r.log_text()
    assert "apply postponed: the database stayed locked" in log
    # Nothing changed, so no recovery (which would wait for the same lock
    # again and hold new readers out back to back); the retry comes after a
    # grace second in which readers held out get in.
    assert "re-applying the last LTX file" not in log and "apply failed" not in log
    delays = [int(m) for m in re.findall(r"waiting for readers of .* in_ms=(\d+)", log)]
    assert delays and min(delays) >= 1000, delays
    check_short_readers(readers)  # new readers waited, none saw a torn state
    stats = release(holder)
    assert stats["bad"] == 0 and stats["versions"] == 1, stats
    # Once the reader is gone the same transactions are applied.
    assert cluster.wait_replicated("app.db", timeout=40) == target
    assert version(r, "app.db") == version(p, "app.db") > held
    assert r.sqlite("app.db", "PRAGMA integrity_check").stdout.strip() == "ok"
    assert int(r.sqlite("app.db", "SELECT sum(bal) FROM acct").stdout) == bank.TOTAL
