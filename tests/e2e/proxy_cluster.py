"""A primary and a replica, each running the example app behind its litefs
proxy (started by `litefs run -- app`), plus curl/socket helpers."""

import re
import socket
import subprocess
import time
from pathlib import Path

from litefs_cluster import Node, PYTHON, ROOT, free_port, wait_for

APP = ROOT / "examples" / "app" / "app.py"
DB = "guestbook.db"


def proxy_config(proxy_port, app_port, extra=""):
    return (f"proxy:\n"
            f"  addr: \"127.0.0.1:{proxy_port}\"\n"
            f"  target: \"127.0.0.1:{app_port}\"\n"
            f"  db: {DB}\n"
            f"  advertise-url: \"http://127.0.0.1:{proxy_port}\"\n"
            f"  max-lag: 2s\n"
            f"  txid-timeout: 2s\n"
            f"  primary-redirect-timeout: 1s\n"
            f"  target-retry-timeout: 500ms\n"
            f"  passthrough: [\"/static/*\", \"*.png\"]\n"
            f"  always-forward: [\"/admin/*\"]\n"
            f"  debug: true\n" + extra)


class ProxyNode(Node):
    def __init__(self, root, name, port, primary_port, candidate, with_app=True, proxy_extra="",
                 app_env=None):
        self.proxy_port = free_port()
        self.app_port = free_port()
        exec_args = [PYTHON, str(APP), str(self.app_port)] if with_app else None
        super().__init__(root, name, port, primary_port, candidate,
                         extra_config=proxy_config(self.proxy_port, self.app_port, proxy_extra),
                         exec_args=exec_args, env={"NODE_NAME": name, **(app_env or {})})
        self.with_app = with_app

    def start(self, wait=True):
        super().start(wait)
        if wait and self.with_app:
            wait_for(lambda: self.app_listening(), 20, what=f"the app of {self.name}")
        return self

    def app_listening(self):
        return self.app_listening_port(self.app_port)

    def app_listening_port(self, port):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.proxy_port}"


class ProxyCluster:
    def __init__(self, root, replica_extra="", app_env=None):
        pport = free_port()
        self.primary = ProxyNode(root, "primary", pport, pport, True, app_env=app_env)
        self.replica = ProxyNode(root, "replica", free_port(), pport, False, proxy_extra=replica_extra,
                                 app_env=app_env)
        self.nodes = [self.primary, self.replica]

    def start(self):
        self.primary.start()
        self.replica.start()
        # The app on the primary created the table; wait for it on the replica.
        wait_for(lambda: self.replica.pos(DB) is not None and self.replica.pos(DB) == self.primary.pos(DB),
                 20, what="the guestbook on the replica")
        return self

    def stop(self):
        for n in self.nodes:
            n.stop()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value), original order
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


def curl(*args, timeout=30):
    """Runs curl with -sS -i and parses the last response (after any 100 Continue)."""
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", str(timeout), *args],
                       capture_output=True, timeout=timeout + 10)
    if p.returncode != 0:
        raise AssertionError(f"curl {args} failed ({p.returncode}): {p.stderr.decode()}")
    return parse_responses(p.stdout)[-1]


def parse_responses(raw):
    """Splits raw HTTP/1.1 output (curl -i, or a socket) into responses."""
    out = []
    rest = raw
    while rest.startswith(b"HTTP/"):
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
        resp = Response(status, headers, b"")
        length = resp.header("Content-Length")
        if status in (100, 101) or (100 <= status < 200):
            if status == 101:
                resp.body = rest
                out.append(resp)
                return out
            continue
        if resp.header("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
            resp.body = body
        elif length is not None:
            resp.body = rest[:int(length)]
            rest = rest[int(length):]
        else:
            resp.body = rest
            rest = b""
        out.append(resp)
    return out


def raw_exchange(port, data, timeout=10, until_close=True, min_responses=1):
    """Sends raw bytes and reads until the server closes (or enough responses arrived)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if not until_close and len(parse_responses(buf)) >= min_responses:
            break
    s.close()
    return buf


def txid_cookie_ok(set_cookie):
    return re.fullmatch(r"__txid=[0-9a-f]{16}; Path=/; Expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} "
                        r"\d\d:\d\d:\d\d GMT; HttpOnly", set_cookie) is not None
