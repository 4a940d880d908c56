"""Helpers for end-to-end tests: start real litefs nodes on loopback, run
SQLite programs under LD_PRELOAD, and wait for conditions with deadlines.

Every wait is bounded in time and polls an observable condition (a file, an
HTTP answer, a process state); nothing sleeps a fixed time and hopes."""

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LITEFS_BUILD", ROOT / "build"))
LITEFS = BUILD / "sidecar" / "litefs"
LIBLITEFS = BUILD / "vfs" / "liblitefs.so"
PYTHON = "/usr/bin/python3"


def wait_for(cond, timeout=10.0, interval=0.01, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _ephemeral_range():
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()


def free_port():
    """A loopback port nothing listens on, for a server started later.

    Chosen below the kernel's ephemeral range: a port there is never given
    to another socket's outgoing connection or port-0 bind between this
    check and the server's bind (the ephemeral ports that free ports used
    to come from were, now and then). Never the same port twice per run."""
    low, high = _ephemeral_range()
    first, last = (10000, low - 1) if low > 11000 else (high + 1, 65535)
    span = last - first + 1
    start = random.randrange(span)
    for i in range(span):
        port = first + (start + i) % span
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port outside the ephemeral range")


# CRC-64/ISO as Go's hash/crc64 computes it, and LiteFS's checksums.
_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0xD800000000000000 if c & 1 else c >> 1
    _TABLE.append(c)
FLAG = 1 << 63


def crc64(data, crc=0):
    crc ^= 0xFFFFFFFFFFFFFFFF
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def db_checksum(path):
    """LiteFS's rolling checksum of a database file (no WAL)."""
    data = Path(path).read_bytes()
    if not data:
        return FLAG
    ps = int.from_bytes(data[16:18], "big")
    ps = 65536 if ps == 1 else ps
    count = int.from_bytes(data[28:32], "big")
    if count == 0 or data[24:28] != data[92:96]:
        count = len(data) // ps
    lock = 0x40000000 // ps + 1
    acc = 0
    for pgno in range(1, count + 1):
        if pgno == lock:
            continue
        page = data[(pgno - 1) * ps: pgno * ps]
        acc ^= crc64(pgno.to_bytes(4, "big") + page) | FLAG
    return acc | FLAG


def logical_bytes(path):
    """The database as SQLite sees it: a copy of the file and its WAL,
    checkpointed into one file by a plain sqlite3 (no preload)."""
    import shutil
    import tempfile
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        wal = Path(str(path) + "-wal")
        if wal.exists():
            shutil.copyfile(wal, str(copy) + "-wal")
            subprocess.run(["sqlite3", str(copy), "PRAGMA wal_checkpoint(TRUNCATE)"],
                           capture_output=True, check=True, env={"PATH": os.environ["PATH"]})
        return copy.read_bytes()


def logical_checksum(path):
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(logical_bytes(path))
        f.flush()
        return db_checksum(f.name)


class Node:
    def __init__(self, root, name, port, primary_port, candidate, hostname="primary-host",
                 extra_config="", exec_args=None, env=None):
        self.name = name
        self.exec_args = exec_args or []
        self.extra_env = env or {}
        self.dir = Path(root) / name / "dir"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.candidate = candidate
        self.config = Path(root) / name / "litefs.yml"
        self.log = Path(root) / name / "litefs.log"
        self.config.write_text(
            f"dir: {self.dir}\n"
            f"http:\n  addr: \"127.0.0.1:{port}\"\n"
            f"lease:\n  type: static\n  candidate: {'true' if candidate else 'false'}\n"
            f"  hostname: {hostname}\n"
            f"  advertise-url: \"http://127.0.0.1:{primary_port}\"\n"
            f"  reconnect-delay: 100ms\n" + extra_config)
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        args = [str(LITEFS), "run", "-config", str(self.config)]
        if self.exec_args:
            args += ["--", *self.exec_args]
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.extra_env})
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        sock = self.dir / ".litefs.sock"
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"litefs {self.name} exited {self.proc.returncode}:\n{self.log_text()}")
            return sock.exists() and self.info() is not None
        wait_for(ready, timeout, what=f"litefs {self.name} to be ready")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def info(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/info", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def path(self, db):
        return self.dir / db

    def pos(self, db):
        try:
            return (self.dir / f"{db}-pos").read_text()
        except FileNotFoundError:
            return None

    def env(self):
        env = dict(os.environ)
        env["LD_PRELOAD"] = str(LIBLITEFS)
        env["LITEFS_DIR"] = str(self.dir)
        return env

    def sqlite(self, db, sql, check=True, timeout_ms=5000):
        """Runs the sqlite3 CLI under LD_PRELOAD; returns the CompletedProcess."""
        p = subprocess.run(["sqlite3", "-cmd", f".timeout {timeout_ms}", str(self.path(db)), sql],
                           env=self.env(), capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"sqlite3 failed ({p.returncode}): {p.stderr}")
        return p

    def python(self, code, check=True):
        p = subprocess.run([PYTHON, "-c", code], env=self.env(), capture_output=True, text=True,
                           timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"python failed ({p.returncode}): {p.stderr}")
        return p


class Cluster:
    """A primary and replicas on loopback, each with its own dir and data dir."""

    def __init__(self, root, replicas=1):
        self.root = Path(root)
        pport = free_port()
        self.primary = Node(root, "primary", pport, pport, candidate=True)
        self.replicas = [Node(root, f"replica{i}", free_port(), pport, candidate=False)
                         for i in range(replicas)]

    @property
    def replica(self):
        return self.replicas[0]

    def start(self):
        self.primary.start()
        for r in self.replicas:
            r.start()
        return self

    def stop(self):
        for n in [*self.replicas, self.primary]:
            n.stop()

    def wait_replicated(self, db, timeout=15):
        def same():
            p = self.primary.pos(db)
            return p is not None and all(r.pos(db) == p for r in self.replicas) and p
        return wait_for(same, timeout, what=f"replicas of {db} to reach the primary's position")
