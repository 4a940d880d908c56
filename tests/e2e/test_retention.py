"""data.retention: old LTX files are deleted (the newest always stays), so
disk use stays bounded; a replica that needs a deleted file gets a snapshot."""

from litefs_cluster import Node, free_port, wait_for

RETENTION = "data:\n  retention: 1s\n  retention-monitor-interval: 200ms\n"


def ltx_files(node, db):
    return sorted((node.dir / ".litefs" / "dbs" / db / "ltx").glob("*.ltx"))


def test_retention_removes_old_files_and_keeps_the_newest(tmp_path):
    port = free_port()
    p = Node(tmp_path, "primary", port, port, candidate=True, extra_config=RETENTION).start()
    try:
        p.sqlite("app.db", "CREATE TABLE t(x);")
        for i in range(30):
            p.sqlite("app.db", f"INSERT INTO t VALUES ({i});")
        assert len(ltx_files(p, "app.db")) == 31
        newest = ltx_files(p, "app.db")[-1].name
        wait_for(lambda: [f.name for f in ltx_files(p, "app.db")] == [newest], timeout=15,
                 what="retention to remove all but the newest LTX file")
        # A replica starting now cannot be served from files: it gets a
        # snapshot and then follows incrementally.
        late = Node(tmp_path, "late", free_port(), port, candidate=False).start()
        try:
            wait_for(lambda: late.pos("app.db") == p.pos("app.db"), what="late replica snapshot")
            p.sqlite("app.db", "INSERT INTO t VALUES ('after');")
            wait_for(lambda: late.pos("app.db") == p.pos("app.db"), what="late replica catch-up")
            assert late.sqlite("app.db", "SELECT count(*) FROM t").stdout.strip() == "31"
        finally:
            late.stop()
    finally:
        p.stop()


def test_snapshot_of_a_primary_that_keeps_committing(tmp_path):
    """A snapshot is taken at the position of the moment. Under a steady
    stream of commits some commit is nearly always between its WAL frames and
    its capture; the snapshot's view of the WAL must stop where the position
    does, or it runs ahead of the position it names and every snapshot of a
    busy primary fails."""
    import subprocess
    from litefs_cluster import PYTHON
    port = free_port()
    p = Node(tmp_path, "primary", port, port, candidate=True, extra_config=RETENTION).start()
    stop = tmp_path / "stop"
    writer = None
    late = None
    try:
        p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
        writer = subprocess.Popen([PYTHON, "-c", f"""
import os, sqlite3, time
db = sqlite3.connect({str(p.path("app.db"))!r}, isolation_level=None, timeout=10)
db.execute("PRAGMA synchronous=NORMAL")
deadline = time.monotonic() + 60
while not os.path.exists({str(stop)!r}) and time.monotonic() < deadline:
    db.execute("INSERT INTO t VALUES (randomblob(100))")
"""], env=p.env(), stderr=subprocess.PIPE, text=True)

        def txid(node):
            pos = node.pos("app.db")
            return int(pos.split("/")[0], 16) if pos else 0
        # The first files are gone: a new replica needs a snapshot.
        wait_for(lambda: ltx_files(p, "app.db") and not ltx_files(p, "app.db")[0].name.startswith(
            "0000000000000001-"), timeout=15, what="retention to remove the first LTX files")
        late = Node(tmp_path, "late", free_port(), port, candidate=False).start()
        start = txid(p)
        wait_for(lambda: txid(late) > start + 200, 20, what="the new replica to get a snapshot and follow")
        assert writer.poll() is None, "the writer stopped before the replica caught up"
    finally:
        stop.write_text("")
        if writer:
            _, err = writer.communicate(timeout=60)
        if late:
            late.stop()
        p.stop()
    assert writer.returncode == 0, err
    assert "snapshot of app.db failed" not in p.log_text()
