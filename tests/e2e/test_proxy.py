"""The proxy: LiteFS's routing rules, read-your-writes, write forwarding,
health, and HTTP correctness — driven with curl and raw sockets against a
primary and a replica, each with the example app behind its proxy."""

import email.utils
import json
import socket
import threading
import time

import pytest

from litefs_cluster import wait_for
from proxy_cluster import (DB, ProxyCluster, ProxyNode, curl, parse_responses, raw_exchange,
                           txid_cookie_ok)


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    c = ProxyCluster(tmp_path_factory.mktemp("proxy")).start()
    yield c
    c.stop()


def messages(node, *curl_args):
    r = curl(*curl_args, f"{node.url}/messages.json")
    assert r.status == 200, r.body
    return [m["text"] for m in json.loads(r.body)]


def local_txid(node):
    return int(node.pos(DB).split("/")[0], 16)


def test_write_on_the_replica_is_forwarded_and_read_back_there(pc, tmp_path):
    jar = tmp_path / "jar"
    r = curl("-c", str(jar), "-d", "text=hello from the replica", f"{pc.replica.url}/messages")
    assert r.status == 303, r.body
    cookies = r.all("Set-Cookie")
    txid_cookie = [c for c in cookies if c.startswith("__txid=")]
    assert len(txid_cookie) == 1 and txid_cookie_ok(txid_cookie[0]), cookies
    # The cookie expires in five minutes and names the primary's new TXID.
    expires = email.utils.parsedate_to_datetime(txid_cookie[0].split("Expires=")[1].split(";")[0])
    assert 280 <= expires.timestamp() - time.time() <= 310
    txid = int(txid_cookie[0][len("__txid="):len("__txid=") + 16], 16)
    assert txid == local_txid(pc.primary)
    token = r.header("Litefs-Txid")
    assert token.startswith(f"{DB}={txid:016x}") and "&@" in token
    # The app on the primary saw the replica's address in X-Forwarded-For... and
    # the same client, reading on the replica, sees its write.
    assert "hello from the replica" in messages(pc.replica, "-b", str(jar))


def test_read_your_writes_with_a_rollback_journal(tmp_path):
    """The example app in DELETE mode: its commits are handed over without
    waiting, yet each forwarded write's cookie names its own TXID and the
    replica serves it back."""
    c = ProxyCluster(tmp_path, app_env={"JOURNAL_MODE": "delete"}).start()
    try:
        assert c.primary.path(DB).read_bytes()[18:20] == b"\x01\x01"  # a rollback journal
        jar = tmp_path / "jar"
        for i in range(5):
            r = curl("-c", str(jar), "-b", str(jar), "-d", f"text=rollback {i}", f"{c.replica.url}/messages")
            assert r.status == 303, r.body
            token = [x for x in r.all("Set-Cookie") if x.startswith("__txid=")][0]
            assert int(token[len("__txid="):len("__txid=") + 16], 16) == local_txid(c.primary)
            assert f"rollback {i}" in messages(c.replica, "-b", str(jar))
    finally:
        c.stop()


def test_read_with_a_future_txid_waits_until_the_replica_has_it(pc):
    want = local_txid(pc.primary) + 1
    token = f"{DB}={want:016x}"
    result = {}

    def read():
        t0 = time.monotonic()
        result["r"] = curl("-H", f"Litefs-Txid: {token}", f"{pc.replica.url}/messages.json")
        result["t"] = time.monotonic() - t0

    parked_before = pc.replica.log_text().count("read, waiting for position")
    t = threading.Thread(target=read)
    t.start()
    # The proxy logs (proxy.debug) when it parks the read; only then write.
    wait_for(lambda: pc.replica.log_text().count("read, waiting for position") > parked_before, 10,
             what="the read to be parked")
    assert t.is_alive()
    pc.primary.sqlite(DB, "INSERT INTO messages(text) VALUES ('written directly on the primary')")
    t.join(15)
    assert not t.is_alive()
    r = result["r"]
    assert r.status == 200
    assert "written directly on the primary" in [m["text"] for m in json.loads(r.body)]


def test_read_for_a_txid_that_never_comes_times_out_with_504(pc):
    want = local_txid(pc.primary) + 1000
    primary_id = pc.primary.info()["nodeID"]
    t0 = time.monotonic()
    r = curl("-H", f"Litefs-Txid: {DB}={want:016x}&@{primary_id}", f"{pc.replica.url}/messages.json")
    assert r.status == 504 and r.body == b"Proxy timeout\n"
    assert 1.5 <= time.monotonic() - t0 <= 6


def test_plain_litefs_cookie_is_honoured(pc):
    # A TXID the replica already has passes at once; 0 and garbage are ignored.
    have = local_txid(pc.replica)
    for value in (f"{have:016x}", "0000000000000000", "nothex", "12"):
        r = curl("-b", f"__txid={value}", f"{pc.replica.url}/messages.json", timeout=5)
        assert r.status == 200, value


def test_stale_token_on_the_primary_does_not_wait(pc):
    # Only the primary writes: a TXID above its own is from a lost history.
    want = local_txid(pc.primary) + 50
    t0 = time.monotonic()
    r = curl("-H", f"Litefs-Txid: {DB}={want:016x}&@00000000DEADBEEF", f"{pc.primary.url}/messages.json")
    assert r.status == 200 and r.header("Litefs-Txid-Stale") == "1"
    assert time.monotonic() - t0 < 1.5


def test_health(pc):
    for n in pc.nodes:
        r = curl(f"{n.url}/litefs/health")
        assert (r.status, r.body) == (200, b"OK\n")
    # HEAD /litefs/health goes to the app (LiteFS), which has no such page.
    assert curl("-I", f"{pc.primary.url}/litefs/health").status == 404


def test_passthrough_and_always_forward(pc):
    # POST to a passthrough path: straight to the local app, no cookie.
    r = curl("-d", "x=1", f"{pc.replica.url}/static/thing")
    assert r.status == 404 and not r.all("Set-Cookie")
    r = curl("-d", "x=1", f"{pc.replica.url}/img/logo.png")
    assert r.status == 404 and not r.all("Set-Cookie")
    # OPTIONS is a read here (LiteFS bounces it to the primary).
    r = curl("-X", "OPTIONS", f"{pc.replica.url}/")
    assert not r.all("Set-Cookie")


def test_always_forward_reaches_the_primary_app(pc):
    assert "node: replica" in curl(f"{pc.replica.url}/").body.decode()
    r = curl(f"{pc.replica.url}/admin/node")
    assert (r.status, r.body) == (200, b"primary\n")
    assert not r.all("Set-Cookie")  # always-forwarded GETs get no cookie (LiteFS)


def test_chunked_write_through_the_replica(pc):
    r = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "text=chunked+write",
             f"{pc.replica.url}/messages")
    assert r.status == 303
    assert "chunked write" in messages(pc.primary)


def test_large_upload_through_the_replica_streams(pc):
    size = 64 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    import hashlib
    path = pc.replica.dir.parent / "upload.bin"
    path.write_bytes(data)
    r = curl("-H", "Expect: 100-continue", "--data-binary", f"@{path}", f"{pc.replica.url}/upload", timeout=120)
    assert r.status == 200, r.body
    got = json.loads(r.body)
    assert got == {"bytes": size, "sha256": hashlib.sha256(data).hexdigest()}
    path.unlink()


def test_head_keepalive_and_pipelining(pc):
    # Two pipelined requests and a HEAD on one connection.
    req = (f"GET /messages.json HTTP/1.1\r\nHost: x\r\n\r\n"
           f"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET /messages.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    raw = raw_exchange(pc.replica.proxy_port, req)
    # HEAD has no body: parse by hand around it.
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    responses = raw.count(b"HTTP/1.1 200")
    assert responses == 3, raw[:2000]


def test_malformed_request_gets_400_and_close(pc):
    raw = raw_exchange(pc.replica.proxy_port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") and b"Connection: close" in raw


def test_oversized_header_gets_431(pc):
    big = "a" * (70 * 1024)
    raw = raw_exchange(pc.replica.proxy_port, f"GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 431")


def test_client_disconnect_mid_body_leaves_the_proxy_serving(pc):
    s = socket.create_connection(("127.0.0.1", pc.replica.proxy_port))
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 100000)
    s.close()
    assert curl(f"{pc.replica.url}/litefs/health").status == 200
    assert curl(f"{pc.replica.url}/messages.json").status == 200


def websocket_session(port, path, words):
    """Opens a WebSocket through the proxy; returns the greeting and checks the echoes."""
    import base64
    import os
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"Upgrade: websocket" in head

    def frame():
        nonlocal rest
        while len(rest) < 2 or len(rest) < 2 + rest[1]:
            chunk = s.recv(4096)
            assert chunk, rest
            rest += chunk
        n = rest[1]
        payload, rest = rest[2:2 + n], rest[2 + n:]
        return payload

    greeting = frame().decode()
    for word in words:
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(word)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(word)))
        assert frame() == word
    s.close()
    return greeting


def test_websocket_is_tunnelled_to_the_local_app(pc):
    assert websocket_session(pc.replica.proxy_port, "/echo", [b"ping", b"through the tunnel"]) == \
        "hello from replica"


def test_websocket_on_an_always_forward_path_reaches_the_primary(pc):
    assert websocket_session(pc.replica.proxy_port, "/admin/echo", [b"to the primary"]) == "hello from primary"


def test_too_many_header_fields_get_431(pc):
    fields = "".join(f"X-F{i}: {i}\r\n" for i in range(200))
    raw = raw_exchange(pc.replica.proxy_port, f"GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 431")


def test_slow_client_gets_408(tmp_path):
    from litefs_cluster import free_port
    port = free_port()
    n = ProxyNode(tmp_path, "slowtest", port, port, True, with_app=False,
                  proxy_extra="  read-header-timeout: 500ms\n  max-connections: 3\n").start()
    try:
        wait_for(lambda: n.app_listening_port(n.proxy_port), 10, what="the proxy")
        # Half a request head, then silence: 408 and the connection closed.
        t0 = time.monotonic()
        raw = raw_exchange(n.proxy_port, b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert raw.startswith(b"HTTP/1.1 408")
        assert 0.4 <= time.monotonic() - t0 < 5
        # Connection limit: three idle connections fill it, a fourth is closed at once.
        held = [socket.create_connection(("127.0.0.1", n.proxy_port)) for _ in range(3)]
        extra = socket.create_connection(("127.0.0.1", n.proxy_port), timeout=5)
        try:
            extra.sendall(b"GET /litefs/health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = extra.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            got = b""  # closed before or while our request arrived: a reset
        assert got == b""  # never an answer
        for h in held:
            h.close()
        # And the proxy still serves once they are gone.
        def healthy():
            try:
                return curl(f"{n.url}/litefs/health", timeout=2).status == 200
            except AssertionError:
                return False
        wait_for(healthy, 10, what="the proxy to serve again")
    finally:
        n.stop()


def test_read_timeout_ends_a_request_whose_head_or_body_is_too_slow(tmp_path):
    """proxy.read-timeout, as Go's ReadTimeout in LiteFS: from a request's
    first byte to the end of its body. A slow head gets 408; a slow body,
    already handed to the app's side, has its connection closed."""
    from litefs_cluster import free_port
    port = free_port()
    n = ProxyNode(tmp_path, "readtimeout", port, port, True,
                  proxy_extra="  read-timeout: 500ms\n").start()
    try:
        wait_for(lambda: n.app_listening_port(n.proxy_port), 10, what="the proxy")
        t0 = time.monotonic()
        raw = raw_exchange(n.proxy_port, b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert raw.startswith(b"HTTP/1.1 408"), raw
        assert b"request read timeout" in raw
        assert 0.4 <= time.monotonic() - t0 < 5  # the head timeout is the default 10 s
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", n.proxy_port), timeout=10)
        s.sendall(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        s.close()
        assert got == b""  # closed, no answer (the app still waits for the body)
        assert 0.4 <= time.monotonic() - t0 < 5
    finally:
        n.stop()


def test_target_down_gets_502(tmp_path):
    # A proxy whose app never starts: refused dials are retried briefly, then 502.
    from litefs_cluster import free_port
    port = free_port()
    n = ProxyNode(tmp_path, "lonely", port, port, True, with_app=False).start()
    try:
        t0 = time.monotonic()
        r = curl(f"{n.url}/")
        assert r.status == 502 and r.body.startswith(b"Proxy error: ")
        assert 0.4 <= time.monotonic() - t0 < 5
    finally:
        n.stop()


def test_no_primary_means_503_for_writes(tmp_path):
    from litefs_cluster import free_port
    dead = free_port()  # nothing listens there: the replica never finds its primary
    n = ProxyNode(tmp_path, "orphan", free_port(), dead, False, with_app=False)
    n.config.write_text(n.config.read_text() + "skip-sync: true\n")
    n.start()
    try:
        wait_for(lambda: n.app_listening_port(n.proxy_port), 10, what="the proxy (skip-sync)")
        t0 = time.monotonic()
        r = curl("-d", "x=1", f"{n.url}/messages")
        assert (r.status, r.body) == (503, b"Proxy error: no primary available\n")
        assert 0.8 <= time.monotonic() - t0 < 5  # primary-redirect-timeout: 1s
    finally:
        n.stop()
