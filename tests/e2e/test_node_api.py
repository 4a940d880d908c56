"""Node API end to end: GET /events (init, tx, primaryChange; a slow
subscriber is dropped), GET /metrics (LiteFS's families, commit and apply
latencies), POST /import and `litefs import` (replicates; refused on a
replica and for anything but a SQLite file, without touching the database),
and the CLI help texts."""

import http.client
import json
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from litefs_cluster import LITEFS, PYTHON, wait_for

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")


class Events:
    """A GET /events subscription read line by line."""

    def __init__(self, node, timeout=10):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
        self.conn.request("GET", "/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type") == "application/json"

    def next(self):
        line = self.resp.readline()
        assert line.endswith(b"\n"), f"stream ended: {line!r}"
        return json.loads(line)

    def next_of(self, kind, db=None, limit=1000):
        for _ in range(limit):
            e = self.next()
            if e["type"] == kind and (db is None or e.get("db") == db):
                return e
        raise AssertionError(f"no {kind} event in {limit} lines")

    def close(self):
        self.conn.close()


def metrics(node):
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def litefs_cli(*args):
    return subprocess.run([str(LITEFS), *args], capture_output=True, text=True, timeout=60)


def make_source_db(path, rows, page_size=4096, wal=False):
    sql = (f"PRAGMA page_size={page_size};"
           + ("PRAGMA journal_mode=WAL;" if wal else "")
           + "CREATE TABLE src(id INTEGER PRIMARY KEY, body TEXT);"
           f"INSERT INTO src SELECT value, printf('row %d', value) FROM generate_series(1, {rows});")
    subprocess.run(["sqlite3", str(path), sql], check=True, capture_output=True)
    if wal:  # a plain file: everything checkpointed into it
        subprocess.run(["sqlite3", str(path), "PRAGMA wal_checkpoint(TRUNCATE)"], check=True,
                       capture_output=True)
    return path


def txid(pos):
    return int(pos.split("/")[0], 16)


# ---- /events -----------------------------------------------------------------

def test_events_report_init_and_every_transaction_on_primary_and_replica(cluster):
    p, r = cluster.primary, cluster.replica
    wait_for(lambda: (r.info() or {}).get("primary", {}).get("hostname"), what="replica connected")
    pe, re_ = Events(p), Events(r)
    try:
        assert pe.next() == {"type": "init", "data": {"isPrimary": True}}
        assert re_.next() == {"type": "init", "data": {"isPrimary": False, "hostname": "primary-host"}}
        p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);")
        pos = cluster.wait_replicated("app.db").strip()
        for events in (pe, re_):
            seen = [events.next_of("tx", "app.db") for _ in range(3)]
            assert [int(e["data"]["txID"], 16) for e in seen] == [1, 2, 3]
            last = seen[-1]["data"]
            assert f"{last['txID']}/{last['postApplyChecksum']}" == pos
            assert last["pageSize"] == 4096
            assert last["commit"] == 2
            assert TS_RE.match(last["timestamp"]), last["timestamp"]
    finally:
        pe.close()
        re_.close()


def test_events_report_every_file_of_a_batch_the_replica_applied_together(cluster):
    """A replica applies the files queued for a database together (one
    journaled transaction in rollback mode); /events still reports one
    transaction per file, in order, as if each had been applied alone. The
    replica is stopped (SIGSTOP) while the primary commits, so the files wait
    in its socket and arrive together."""
    p, r = cluster.primary, cluster.replica
    p.sqlite("burst.db", "CREATE TABLE t(n INTEGER PRIMARY KEY);")
    first = txid(cluster.wait_replicated("burst.db")) + 1
    m0 = metrics(r)
    events = Events(r)
    try:
        events.next_of("init")
        r.proc.send_signal(signal.SIGSTOP)
        try:
            p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path("burst.db"))!r}, isolation_level=None)
for n in range(200):
    db.execute("INSERT INTO t VALUES (?)", (n,))
""")
        finally:
            r.proc.send_signal(signal.SIGCONT)
        last = txid(cluster.wait_replicated("burst.db"))
        assert last == first + 199
        seen = []
        while not seen or seen[-1] < last:
            seen.append(int(events.next_of("tx", "burst.db")["data"]["txID"], 16))
        assert seen == list(range(first, last + 1))
    finally:
        events.close()
    m = metrics(r)
    files = m['litefs_db_apply_count{db="burst.db"}'] - m0.get('litefs_db_apply_count{db="burst.db"}', 0)
    applies = m["litefs_apply_duration_seconds_count"] - m0["litefs_apply_duration_seconds_count"]
    assert files == 200
    assert applies < files, "no batch formed: the test shows nothing"


def test_events_report_a_dropped_database_and_an_import(cluster, tmp_path):
    p, r = cluster.primary, cluster.replica
    p.sqlite("gone.db", "CREATE TABLE t(x);")
    cluster.wait_replicated("gone.db")
    events = Events(r)
    try:
        events.next_of("init")
        p.path("gone.db").unlink()  # a drop: LiteFS's deletion marker, commit 0
        e = events.next_of("tx", "gone.db")["data"]
        assert int(e["txID"], 16) == 2 and e["commit"] == 0
        assert e["postApplyChecksum"] == "8000000000000000"
        src = make_source_db(tmp_path / "src.db", rows=10, page_size=1024)
        res = litefs_cli("import", "-name", "gone.db", "-url", f"http://127.0.0.1:{p.port}", str(src))
        assert res.returncode == 0, res.stderr
        e = events.next_of("tx", "gone.db")["data"]
        assert int(e["txID"], 16) == 3 and e["pageSize"] == 1024 and e["commit"] > 0
    finally:
        events.close()


def test_events_report_primary_changes_on_a_replica(cluster):
    p, r = cluster.primary, cluster.replica
    wait_for(lambda: (r.info() or {}).get("primary", {}).get("hostname"), what="replica connected")
    events = Events(r, timeout=30)
    try:
        assert events.next()["data"]["hostname"] == "primary-host"
        p.stop()
        assert events.next_of("primaryChange") == {"type": "primaryChange",
                                                   "data": {"isPrimary": False}}
        p.start()
        assert events.next_of("primaryChange") == {
            "type": "primaryChange", "data": {"isPrimary": False, "hostname": "primary-host"}}
    finally:
        events.close()


def test_a_subscriber_that_stops_reading_is_dropped(cluster):
    p = cluster.primary
    db = "d" * 200 + ".db"  # long lines: fewer commits fill the socket buffers
    # Rollback mode: every commit is captured on its own, one event each
    # (WAL commits the app does not wait for may be captured together).
    p.sqlite(db, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x);")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window
    s.connect(("127.0.0.1", p.port))
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: metrics(p)["litefs_event_subscriber_count"] == 1, what="subscriber counted")
    # Commits while this client reads nothing: once the kernel's buffers are
    # full, events queue in the sidecar, and past 1,024 the client goes.
    writer = f"""
import sqlite3
db = sqlite3.connect({str(p.path(db))!r}, isolation_level=None)
db.execute("PRAGMA synchronous=OFF")
for i in range(2000):
    db.execute("INSERT INTO t VALUES (?)", (i,))
"""
    commits = 0
    for _ in range(15):  # at most 30,000 commits
        p.python(writer)
        commits += 2000
        if metrics(p)["litefs_event_subscriber_count"] == 0:
            break
    wait_for(lambda: metrics(p)["litefs_event_subscriber_count"] == 0, timeout=10,
             what="the slow subscriber dropped")
    assert "events subscriber dropped" in p.log_text()
    # What was already on its way still arrives, then the response ends.
    s.settimeout(10)
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.endswith(b"0\r\n\r\n"), data[-100:]
    assert data.count(b'"type":"tx"') < commits
    # The node keeps serving new subscribers.
    e = Events(p)
    assert e.next()["type"] == "init"
    e.close()


# ---- /metrics ----------------------------------------------------------------

def test_metrics_show_positions_roles_streams_and_latencies(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x);" + "INSERT INTO t VALUES (1);" * 9)
    pos = cluster.wait_replicated("app.db")
    pm = metrics(p)
    wait_for(lambda: metrics(r).get('litefs_db_apply_count{db="app.db"}', 0) >= 10, what="applies counted")
    rm = metrics(r)
    # One latency per apply; files that arrive together apply together.
    assert 1 <= rm["litefs_apply_duration_seconds_count"] <= 10
    assert pm["litefs_is_primary"] == 1 and rm["litefs_is_primary"] == 0
    assert pm["litefs_db_count"] == 1 and rm["litefs_db_count"] == 1
    assert pm['litefs_db_txid{db="app.db"}'] == txid(pos) == 10
    assert rm['litefs_db_txid{db="app.db"}'] == 10
    assert pm["litefs_subscriber_count"] == 1 and pm["litefs_http_stream_count"] == 1
    assert pm['litefs_db_commit_count{db="app.db"}'] == 10
    assert pm["litefs_commit_duration_seconds_count"] == 10
    assert pm['litefs_commit_duration_seconds_bucket{le="+Inf"}'] == 10
    assert 0 < pm["litefs_commit_duration_seconds_sum"] < 10
    assert pm["litefs_apply_duration_seconds_count"] == 0
    assert rm['litefs_db_apply_count{db="app.db"}'] == 10
    assert rm["litefs_commit_duration_seconds_count"] == 0
    assert 0 <= rm['litefs_db_lag_seconds{db="app.db"}'] < 10
    assert pm["litefs_lag_seconds"] == 0
    assert pm["process_resident_memory_bytes"] > 1 << 20
    # Buckets are cumulative.
    buckets = [v for k, v in pm.items() if k.startswith("litefs_commit_duration_seconds_bucket")]
    assert buckets == sorted(buckets)


# ---- /import -----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["DELETE", "WAL"])
def test_import_replaces_the_database_and_replicates(cluster, tmp_path, mode):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; CREATE TABLE old(x); INSERT INTO old VALUES (1);")
    before = txid(cluster.wait_replicated("app.db"))
    src = make_source_db(tmp_path / "src.db", rows=3000)
    # A connection open on the primary and one on the replica across the
    # import must see the new schema and rows without reopening.
    watcher = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
print(db.execute("SELECT count(*) FROM old").fetchone()[0], flush=True)
sys.stdin.readline()
print(db.execute("SELECT count(*), max(body) FROM src").fetchone(), flush=True)
print(db.execute("SELECT count(*) FROM sqlite_master WHERE name='old'").fetchone()[0], flush=True)
"""
    watchers = [subprocess.Popen([PYTHON, "-c", watcher, str(n.path("app.db"))], env=n.env(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for n in (p, r)]
    for w in watchers:
        assert w.stdout.readline().strip() == "1"
    res = litefs_cli("import", "-name", "app.db", "-url", f"http://127.0.0.1:{p.port}", str(src))
    assert res.returncode == 0, res.stderr
    pos = cluster.wait_replicated("app.db")
    assert txid(pos) == before + 1  # one new transaction
    for w in watchers:
        out, _ = w.communicate("\n", timeout=30)
        assert out.splitlines() == ["(3000, 'row 999')", "0"], out
    for n in (p, r):
        assert n.sqlite("app.db", "PRAGMA journal_mode").stdout.strip() == mode.lower()
        assert n.sqlite("app.db", "PRAGMA integrity_check").stdout.strip() == "ok"
    # Later commits continue from the import, and replicate.
    p.sqlite("app.db", "INSERT INTO src(body) VALUES ('after')")
    pos = cluster.wait_replicated("app.db")
    assert txid(pos) == before + 2
    assert r.sqlite("app.db", "SELECT count(*) FROM src").stdout.strip() == "3001"


def test_import_creates_a_new_database_as_a_snapshot(cluster, tmp_path):
    p, r = cluster.primary, cluster.replica
    src = make_source_db(tmp_path / "src.db", rows=100, page_size=1024, wal=True)
    res = litefs_cli("import", "-name", "new.db", f"-url=http://127.0.0.1:{p.port}", str(src))
    assert res.returncode == 0, res.stderr
    assert txid(cluster.wait_replicated("new.db")) == 1
    assert r.sqlite("new.db", "SELECT count(*) FROM src").stdout.strip() == "100"
    assert r.sqlite("new.db", "PRAGMA page_size").stdout.strip() == "1024"


def test_import_on_a_replica_is_refused_naming_the_primary(cluster, tmp_path):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x);")
    pos = cluster.wait_replicated("app.db")
    wait_for(lambda: (r.info() or {}).get("primary", {}).get("hostname"), what="replica connected")
    src = make_source_db(tmp_path / "src.db", rows=10)
    res = litefs_cli("import", "-name", "app.db", "-url", f"http://127.0.0.1:{r.port}", str(src))
    assert res.returncode == 1
    assert "HTTP 503" in res.stderr and "replica" in res.stderr and "primary-host" in res.stderr
    assert r.pos("app.db") == pos and p.pos("app.db") == pos


def test_import_refuses_anything_but_a_sqlite_file_and_changes_nothing(cluster, tmp_path):
    p = cluster.primary
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (42);")
    pos = cluster.wait_replicated("app.db")
    before = p.path("app.db").read_bytes()
    good = make_source_db(tmp_path / "src.db", rows=2000).read_bytes()
    cases = {
        "text": b"hello, world\n" * 100,
        "empty": b"",
        "truncated": good[: len(good) // 2 + 10],
        "bad page size": good[:16] + b"\x03\x00" + good[18:],
        "huge garbage": b"\x00" * (4 << 20),
    }
    for what, body in cases.items():
        for name in ("app.db", "other.db"):
            req = urllib.request.Request(f"http://127.0.0.1:{p.port}/import?name={name}",
                                         data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=30)
            assert e.value.code == 400, (what, e.value.code)
            msg = e.value.read().decode()
            assert "SQLite" in msg or "database" in msg, (what, msg)
    assert p.pos("app.db") == pos
    assert p.path("app.db").read_bytes() == before
    assert not p.path("other.db").exists() and p.pos("other.db") is None
    assert "other.db" not in p.info()["dbs"]
    assert list((p.dir / ".litefs").glob("import-*")) == []  # no upload left behind
    # Missing or invalid names, wrong method.
    for query, code in (("", 400), ("?name=", 400), ("?name=../x", 400), ("?name=a-wal", 400)):
        req = urllib.request.Request(f"http://127.0.0.1:{p.port}/import{query}", data=good,
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == code, query
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{p.port}/import?name=app.db", timeout=5)
    assert e.value.code == 405


def test_cli_help_and_usage():
    for cmd in ("import", "export"):
        res = litefs_cli(cmd, "--help")
        assert res.returncode == 2
        assert f"usage: litefs {cmd} -name DB [-url URL] PATH" in res.stdout
        assert "-url URL" in res.stdout
        res = litefs_cli(cmd)
        assert res.returncode == 2 and "usage:" in res.stderr
    res = litefs_cli("import", "-name", "x.db", "-url", "http://127.0.0.1:1", "/nonexistent/file")
    assert res.returncode == 1 and "/nonexistent/file" in res.stderr


def test_uploads_left_by_a_killed_sidecar_are_removed_at_startup(cluster):
    p = cluster.primary
    p.stop()
    leftover = p.dir / ".litefs" / "import-999-1.tmp"
    leftover.write_bytes(b"SQLite format 3\0" + b"\0" * 1000)
    unrelated = p.dir / ".litefs" / "import-notes.txt"
    unrelated.write_text("kept")
    p.start()
    assert not leftover.exists()
    assert unrelated.exists()


@pytest.mark.parametrize("mode", ["DELETE", "WAL"])
def test_import_waits_for_an_app_writer_then_applies(cluster, tmp_path, mode):
    """An app holding the write lock makes the import wait (its commit goes
    first), without deadlocking the app's commit behind the import."""
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; CREATE TABLE old(x);")
    before = txid(cluster.wait_replicated("app.db"))
    holder = subprocess.Popen([PYTHON, "-c", """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO old VALUES (1)")
print("holding", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("committed", flush=True)
""", str(p.path("app.db"))], env=p.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    src = make_source_db(tmp_path / "src.db", rows=500)
    cli = subprocess.Popen([str(LITEFS), "import", "-name", "app.db", "-url",
                            f"http://127.0.0.1:{p.port}", str(src)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The import has reached the database and is waiting for the lock.
    wait_for(lambda: list((p.dir / ".litefs" / "dbs" / "app.db" / "ltx").glob("*.tmp")),
             what="the import's LTX written")
    assert cli.poll() is None
    assert txid(p.pos("app.db")) == before
    out, _ = holder.communicate("\n", timeout=30)
    assert out.strip() == "committed"
    _, err = cli.communicate(timeout=40)
    assert cli.returncode == 0, err
    pos = cluster.wait_replicated("app.db")
    assert txid(pos) == before + 2  # the app's commit, then the import
    for n in (p, r):
        assert n.sqlite("app.db", "SELECT count(*) FROM src").stdout.strip() == "500"
        assert n.sqlite("app.db", "PRAGMA integrity_check").stdout.strip() == "ok"


@pytest.mark.parametrize("mode", ["DELETE", "WAL"])
def test_import_during_a_write_workload_keeps_replicas_consistent(cluster, tmp_path, mode):
    """Bank transfers keep committing on the primary while a bank-shaped
    database is imported: the import is not starved by the stream of
    transactions (writers are held off while it waits for the lock), every
    transaction before and after it replicates, and nobody ever sees a wrong
    total."""
    import bank
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", f"PRAGMA journal_mode={mode}; {bank.SETUP_SQL}")
    cluster.wait_replicated("app.db")
    src = tmp_path / "src.db"
    subprocess.run(["sqlite3", str(src), bank.SETUP_SQL + "UPDATE ver SET v = 1000000;"],
                   check=True, capture_output=True)
    readers = [subprocess.Popen([PYTHON, "-c", bank.READER, str(n.path("app.db")), "4"],
                                env=n.env(), stdout=subprocess.PIPE, text=True) for n in (p, r)]
    writer = subprocess.Popen([PYTHON, "-c", bank.WRITER, str(p.path("app.db")), "4"],
                              env=p.env(), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: txid(p.pos("app.db")) > 20, what="transfers running")
    res = litefs_cli("import", "-name", "app.db", "-url", f"http://127.0.0.1:{p.port}", str(src))
    assert res.returncode == 0, res.stderr
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    for proc in readers:
        out, _ = proc.communicate(timeout=60)
        stats = bank.reader_stats(out)
        assert stats["bad"] == 0 and stats["errors"] == 0, out
    pos = cluster.wait_replicated("app.db")
    for n in (p, r):
        v = int(n.sqlite("app.db", "SELECT v FROM ver").stdout)
        assert v > 1000000  # transfers continued on top of the import
        assert int(n.sqlite("app.db", "SELECT sum(bal) FROM acct").stdout) == bank.TOTAL
        assert n.sqlite("app.db", "PRAGMA integrity_check").stdout.strip() == "ok"
    assert pos == r.pos("app.db")
    if mode == "DELETE":  # (in WAL mode the pages may still sit in the WAL files)
        assert p.path("app.db").read_bytes() == r.path("app.db").read_bytes()
