"""Helpers for failover tests: a real etcd on loopback (temporary data dir,
random ports), litefs nodes using the etcd lease, a write load under
LD_PRELOAD that reports each acknowledged commit, and the commit windows
each sidecar logs ("commit window opened/closed" with monotonic times).

Every wait is bounded and polls an observable condition."""

import base64
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from litefs_cluster import LITEFS, PYTHON, Node, free_port, logical_checksum, wait_for

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
KEY = "litefs/primary"


def make_certificates(where):
    """A throwaway CA, a server certificate for 127.0.0.1 and a client
    certificate it signed (PEM files in `where`)."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=litefs-test-ca")
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", *ext)
    return {name: where / name for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class Etcd:
    """One etcd member listening on `host` (loopback unless told); with
    `certs` (make_certificates) it serves https and requires client
    certificates."""

    def __init__(self, root, host="127.0.0.1", netns=None, certs=None, extra_args=()):
        self.dir = Path(root) / "etcd"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs = certs
        self.extra_args = list(extra_args)
        self.auth = None  # (user, password) once enable_auth ran
        self.host = host
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log = self.dir / "etcd.log"
        self.proc = None

    @property
    def scheme(self):
        return "https" if self.certs else "http"

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.client_port}"

    def start(self, timeout=20):
        peer = f"http://127.0.0.1:{self.peer_port}"
        listen = self.url
        if self.host != "127.0.0.1":
            listen += f",{self.scheme}://127.0.0.1:{self.client_port}"
        tls = []
        if self.certs:
            tls = ["--cert-file", str(self.certs["server.pem"]), "--key-file", str(self.certs["server.key"]),
                   "--trusted-ca-file", str(self.certs["ca.pem"]), "--client-cert-auth"]
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", str(self.dir / "data"),
             "--listen-client-urls", listen, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"default={peer}", *tls, *self.extra_args],
            stdout=self.logf, stderr=subprocess.STDOUT)
        wait_for(lambda: self._alive(), timeout, interval=0.05, what="etcd to answer")
        return self

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return self.get(KEY, timeout=1) is not False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()

    def post(self, path, payload, timeout=2, token=None):
        """POSTs JSON to etcd's gateway; returns the decoded answer."""
        req = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.client_port}{path}",
                                     json.dumps(payload).encode())
        if token:
            req.add_header("Authorization", token)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def enable_auth(self, user, password):
        """Turns on etcd's authentication with `user` as its root user."""
        self.post("/v3/auth/user/add", {"name": user, "password": password})
        try:
            self.post("/v3/auth/role/add", {"name": "root"})
        except urllib.error.HTTPError:
            pass  # etcd versions that create it themselves
        self.post("/v3/auth/user/grant", {"user": user, "role": "root"})
        self.post("/v3/auth/enable", {})
        self.auth = (user, password)

    def get(self, key, timeout=2):
        """The key's value (bytes), None if absent, False if etcd did not answer."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        context = None
        if self.certs:
            context = ssl.create_default_context(cafile=str(self.certs["ca.pem"]))
            context.load_cert_chain(str(self.certs["client.pem"]), str(self.certs["client.key"]))
        try:
            req = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.client_port}/v3/kv/range", body)
            if self.auth:
                token = self.post("/v3/auth/authenticate", {"name": self.auth[0], "password": self.auth[1]},
                                  timeout=timeout)["token"]
                req.add_header("Authorization", token)
            with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
                kvs = json.loads(r.read()).get("kvs")
        except OSError:
            return False
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None


class EtcdNode(Node):
    """A litefs node with `lease.type: etcd`, its API on `bind` (advertised
    and used by the test; listen_all binds every interface), run inside
    network namespace `netns` if given."""

    def __init__(self, root, name, etcd_urls, candidate=True, ttl="3s", lock_delay="500ms",
                 bind="127.0.0.1", port=None, extra_lease="", listen_all=False, netns=None,
                 extra_etcd=""):
        self.name = name
        self.dir = Path(root) / name / "dir"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.bind = bind
        self.candidate = candidate
        self.config = Path(root) / name / "litefs.yml"
        self.log = Path(root) / name / "litefs.log"
        self.netns = netns
        self.deaths = []
        endpoints = ", ".join(f'"{u}"' for u in etcd_urls)
        self.config.write_text(
            f"dir: {self.dir}\n"
            f"http:\n  addr: \"{'' if listen_all else bind}:{self.port}\"\n"
            f"lease:\n  type: etcd\n  candidate: {'true' if candidate else 'false'}\n"
            f"  hostname: {name}\n"
            f"  advertise-url: \"http://{bind}:{self.port}\"\n"
            f"  reconnect-delay: 100ms\n" + extra_lease +
            f"  etcd:\n    endpoints: [{endpoints}]\n    ttl: {ttl}\n    lock-delay: {lock_delay}\n"
            + extra_etcd)
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        cmd = [str(LITEFS), "run", "-config", str(self.config)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def info(self):
        try:
            with urllib.request.urlopen(f"http://{self.bind}:{self.port}/info", timeout=1) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def is_primary(self):
        i = self.info()
        return bool(i and i.get("isPrimary"))

    def post(self, path, timeout=10):
        req = urllib.request.Request(f"http://{self.bind}:{self.port}{path}", b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def kill(self):
        """SIGKILL: the process logs nothing more, so its open window ends at
        its death, which the test records."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.deaths.append(int(time.monotonic() * 1e6))
        self.logf.close()

    def windows(self):
        """[(opened_us, closed_us or None)] from this node's log, monotonic clock."""
        out = []
        deaths = iter(self.deaths)
        for line in self.log_text().splitlines():
            if " litefs starting " in line and out and out[-1][1] is None:
                out[-1][1] = next(deaths)  # killed while accepting commits
            m = re.search(r"commit window (opened|closed) mono_us=(\d+)", line)
            if not m:
                continue
            t = int(m.group(2))
            if m.group(1) == "opened":
                out.append([t, None])
            elif out and out[-1][1] is None:
                out[-1][1] = t
        return [tuple(w) for w in out]


def primary_of(nodes):
    """The one node that says it is the primary, or None (also None if two do)."""
    p = [n for n in nodes if n.proc and n.proc.poll() is None and n.is_primary()]
    return p[0] if len(p) == 1 else None


def assert_no_overlap(nodes, now_us=None):
    """No two nodes' commit windows overlap (a window still open ends 'now')."""
    now_us = now_us or int(time.monotonic() * 1e6)
    spans = []
    for n in nodes:
        for opened, closed in n.windows():
            spans.append((opened, closed if closed is not None else now_us, n.name))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        assert b0 >= a1, (f"split brain: {an} accepted commits until {a1} us but {bn} "
                          f"started at {b0} us ({(a1 - b0) / 1000:.1f} ms overlap)")
    return spans


def converged(nodes, db):
    """All nodes hold the same position and the same logical checksum."""
    positions = {n.pos(db) for n in nodes}
    if len(positions) != 1 or None in positions:
        return False
    return len({logical_checksum(n.path(db)) for n in nodes}) == 1


WRITER = r"""
import sqlite3, sys, time
db, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
con = sqlite3.connect(db, timeout=0.2, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, at REAL)")
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    i += 1
    try:
        con.execute("INSERT INTO t VALUES(?, ?)", (f"{tag}-{i}", time.monotonic()))
        print("ok", f"{tag}-{i}", time.monotonic(), flush=True)
    except sqlite3.Error as e:
        print("err", f"{tag}-{i}", time.monotonic(), str(e).replace(" ", "_"), flush=True)
        time.sleep(0.005)
"""


class Writer:
    """Inserts one row per transaction for `seconds` on `node`'s copy of
    `db`, under LD_PRELOAD; each acknowledged commit is printed."""

    def __init__(self, node, db, tag, seconds=60, netns=None):
        self.out = Path(node.dir).parent / f"writer-{tag}.out"
        self.outf = open(self.out, "w")
        cmd = [PYTHON, "-c", WRITER, str(node.path(db)), tag, str(seconds)]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = subprocess.Popen(cmd, env=node.env(), stdout=self.outf,
                                     stderr=subprocess.STDOUT)

    def lines(self):
        text = self.out.read_text()
        complete = text[:text.rfind("\n") + 1]  # a line still being written is read next time
        return [l.split() for l in complete.splitlines() if l.startswith(("ok ", "err "))]

    def acked(self):
        return [l[1] for l in self.lines() if l[0] == "ok"]

    def errors(self):
        return [l for l in self.lines() if l[0] == "err"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.outf.close()


def rows(node, db):
    p = node.sqlite(db, "SELECT id FROM t")
    return set(p.stdout.split())
