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
