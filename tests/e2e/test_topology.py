"""Several replicas, many databases, and bad input on the node API."""

import socket
import struct
import subprocess
import urllib.error
import urllib.request

import pytest

from litefs_cluster import Cluster, logical_bytes, wait_for


@pytest.fixture
def three_replicas(tmp_path):
    c = Cluster(tmp_path, replicas=3).start()
    yield c
    c.stop()


def test_one_primary_three_replicas_converge(three_replicas):
    c = three_replicas
    p = c.primary
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
    p.python(f"""
import sqlite3
db = sqlite3.connect({str(p.path('app.db'))!r}, isolation_level=None)
for i in range(200):
    db.execute("INSERT INTO t VALUES (?)", (i,))
""")
    c.wait_replicated("app.db", timeout=30)
    want = logical_bytes(p.path("app.db"))
    for r in c.replicas:
        assert logical_bytes(r.path("app.db")) == want
        assert (r.dir / ".primary").read_text() == "primary-host\n"


def test_a_hundred_databases_created_and_dropped(cluster):
    p, r = cluster.primary, cluster.replica
    names = [f"db{i:03}.db" for i in range(100)]
    script = "\n".join(f"ATTACH '{p.path(n)}' AS a{i}; CREATE TABLE a{i}.t(x); "
                       f"INSERT INTO a{i}.t VALUES ({i}); DETACH a{i};"
                       for i, n in enumerate(names))
    p.sqlite("main.db", script)
    for n in names:
        cluster.wait_replicated(n, timeout=60)
    assert r.sqlite("db042.db", "SELECT x FROM t").stdout.strip() == "42"
    info = r.info()
    assert all(n in info["dbs"] for n in names)
    # Drop half of them: the deletions propagate, the others stay.
    for n in names[::2]:
        p.path(n).unlink()
    for n in names[::2]:
        wait_for(lambda n=n: not r.path(n).exists(), timeout=30, what=f"{n} removed on the replica")
    for n in names[1::2]:
        assert r.path(n).exists()
        assert r.pos(n) == p.pos(n)


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(200)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def pos_map(entries):
    out = struct.pack(">I", len(entries))
    for name, txid, checksum in entries:
        raw = name.encode() if isinstance(name, str) else name
        out += struct.pack(">I", len(raw)) + raw + struct.pack(">QQ", txid, checksum)
    return out


@pytest.mark.parametrize("name", ["../escape.db", "a/b.db", "nul\0.db", ".hidden", "x-wal", ""])
def test_stream_refuses_bad_database_names(cluster, name):
    p = cluster.primary
    status, body = post(f"http://127.0.0.1:{p.port}/stream", pos_map([(name, 1, 1 << 63)]))
    assert status == 400
    assert b"invalid database name" in body
    assert not (p.dir.parent / "escape.db").exists()


def test_stream_refuses_a_malformed_position_map(cluster):
    p = cluster.primary
    for body in (b"\x00\x00", pos_map([("a.db", 1, 2)])[:-3], pos_map([]) + b"junk"):
        status, text = post(f"http://127.0.0.1:{p.port}/stream", body)
        assert status == 400, text
        assert b"position map" in text


def test_node_api_refuses_malformed_http(cluster):
    p = cluster.primary
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GARBAGE \x01\x02 HTTP/9.9\r\n\r\n")
        reply = s.recv(1000)
    assert reply.startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        reply = s.recv(1000)
    assert reply.startswith(b"HTTP/1.1 431")
    # Still serving.
    assert p.info()["isPrimary"] is True


def test_replicas_of_another_cluster_are_refused(tmp_path):
    from litefs_cluster import Node, free_port
    a = Cluster(tmp_path / "a").start()
    try:
        a.primary.sqlite("app.db", "CREATE TABLE t(x);")
        a.wait_replicated("app.db")
        # A replica that belongs to cluster A follows B's primary by mistake.
        b_port = free_port()
        b = Node(tmp_path / "b", "primary", b_port, b_port, candidate=True).start()
        try:
            stray = a.replica
            stray.stop()
            stray.config.write_text(stray.config.read_text().replace(
                f"http://127.0.0.1:{a.primary.port}", f"http://127.0.0.1:{b_port}"))
            stray.start()
            wait_for(lambda: "cluster id mismatch" in stray.log_text(), what="the refusal")
            assert not (stray.dir / ".primary").exists()
        finally:
            b.stop()
    finally:
        a.stop()


def test_export_from_primary_and_replica(cluster, tmp_path):
    """GET /export and `litefs export`: the database as SQLite sees it (WAL
    included), from any node; unknown names are 404."""
    from litefs_cluster import LITEFS
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);"
                       "INSERT INTO t SELECT value FROM generate_series(1, 500);")
    cluster.wait_replicated("app.db")
    for node in (p, r):
        out = tmp_path / f"backup-{node.name}.db"
        (tmp_path / f"backup-{node.name}.db-wal").write_text("stale")
        res = subprocess.run([str(LITEFS), "export", "-name", "app.db", "-url",
                              f"http://127.0.0.1:{node.port}", str(out)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert not (tmp_path / f"backup-{node.name}.db-wal").exists()
        assert out.read_bytes() == logical_bytes(p.path("app.db"))
        check = subprocess.run(["sqlite3", str(out), "PRAGMA integrity_check; SELECT count(*) FROM t"],
                               capture_output=True, text=True)
        assert check.stdout.split() == ["ok", "500"]
    status, _ = urllib_get(f"http://127.0.0.1:{p.port}/export?name=nope.db")
    assert status == 404
    res = subprocess.run([str(LITEFS), "export", "-name", "nope.db", "-url",
                          f"http://127.0.0.1:{p.port}", str(tmp_path / "x.db")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "404" in res.stderr
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "x.db.tmp").exists()


def urllib_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
