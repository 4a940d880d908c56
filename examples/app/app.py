#!/usr/bin/env python3
"""A small guestbook behind the litefs proxy: the example app of the demo and tests.

It knows nothing about replication. It opens $LITEFS_DIR/guestbook.db with
Python's sqlite3 (the system libsqlite3, so LD_PRELOAD=liblitefs.so captures
its commits) and serves:

  GET  /                 the guestbook page with a form
  POST /messages         adds a message (form field "text"), then 303 to /
  GET  /messages.json    the messages as JSON
  GET  /admin/node       which node served the request ($NODE_NAME)
  POST /upload           reads a body of any size in pieces; answers its length and SHA-256
  GET  /echo             a WebSocket echo (to show upgrades are tunnelled): first
                         a text frame "hello from <node>", then every frame back
                         (also at /admin/echo, which the demo config always-forwards)

Usage: app.py [PORT]   (default $PORT or 8080; APP_HOST to listen on another
                        address than 127.0.0.1; JOURNAL_MODE=wal|delete)
"""
import base64
import hashlib
import html
import json
import os
import socket
import sqlite3
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB_PATH = os.path.join(os.environ.get("LITEFS_DIR", "."), "guestbook.db")
JOURNAL_MODE = os.environ.get("JOURNAL_MODE", "wal")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def connect():
    db = sqlite3.connect(DB_PATH, timeout=5, isolation_level=None)
    return db


def init_db():
    db = connect()
    try:
        db.execute(f"PRAGMA journal_mode={JOURNAL_MODE}")
        db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    except sqlite3.OperationalError as e:
        # A replica cannot write; the primary creates the table.
        print(f"app: init skipped on this node: {e}", file=sys.stderr)
    finally:
        db.close()


def messages(limit=50):
    db = connect()
    try:
        rows = db.execute("SELECT id, text FROM messages ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.OperationalError:
        rows = []  # no table yet on a replica that has not received it
    finally:
        db.close()
    return [{"id": r[0], "text": r[1]} for r in rows]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in separate writes

    def log_message(self, fmt, *args):
        if os.environ.get("APP_LOG"):
            super().log_message(fmt, *args)

    def send_body(self, status, body, content_type="text/html; charset=utf-8", extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            items = "".join(f"<li id='m{m['id']}'>{html.escape(m['text'])}</li>" for m in messages())
            page = (
                "<!doctype html><html><head><title>Guestbook</title></head><body>"
                f"<h1>Guestbook</h1><p>node: {html.escape(os.environ.get('NODE_NAME', socket.gethostname()))}</p>"
                "<form method='post' action='/messages'>"
                "<input name='text' id='text' autocomplete='off'><button id='send'>Sign</button></form>"
                f"<ul id='messages'>{items}</ul></body></html>"
            )
            return self.send_body(200, page)
        if path == "/admin/node":
            return self.send_body(200, os.environ.get("NODE_NAME", socket.gethostname()) + "\n", "text/plain")
        if path == "/messages.json":
            return self.send_body(200, json.dumps(messages()), "application/json")
        if path.endswith("/echo") and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket_echo()
        self.send_body(404, "not found\n", "text/plain")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/upload":
            return self.upload()
        body = b"".join(self.body_chunks()).decode("utf-8", "replace")
        if path != "/messages":
            return self.send_body(404, "not found\n", "text/plain")
        text = urllib.parse.parse_qs(body).get("text", [""])[0].strip()
        if not text:
            return self.send_body(400, "text is required\n", "text/plain")
        db = connect()
        try:
            cur = db.execute("INSERT INTO messages (text) VALUES (?)", (text,))
            new_id = cur.lastrowid
        except sqlite3.Error as e:
            return self.send_body(500, f"write failed: {e}\n", "text/plain")
        finally:
            db.close()
        if "application/json" in self.headers.get("Accept", ""):
            return self.send_body(201, json.dumps({"id": new_id}), "application/json")
        self.send_body(303, "", "text/plain", [("Location", "/")])

    def body_chunks(self):
        """The request body in pieces, Content-Length or chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def upload(self):
        digest, total = hashlib.sha256(), 0
        for chunk in self.body_chunks():
            digest.update(chunk)
            total += len(chunk)
        self.send_body(200, json.dumps({"bytes": total, "sha256": digest.hexdigest()}), "application/json")

    # A minimal RFC 6455 echo: text frames from the client come back.
    def websocket_echo(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        hello = f"hello from {os.environ.get('NODE_NAME', socket.gethostname())}".encode()
        self.wfile.write(bytes([0x81, len(hello)]) + hello)
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(self.rfile.read(2), "big")
            elif length == 127:
                length = int.from_bytes(self.rfile.read(8), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:  # close
                self.wfile.write(b"\x88\x00")
                return
            frame = bytes([0x80 | opcode])
            if len(payload) < 126:
                frame += bytes([len(payload)])
            else:
                frame += bytes([126]) + len(payload).to_bytes(2, "big")
            self.wfile.write(frame + payload)
            self.wfile.flush()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "8080"))
    init_db()
    host = os.environ.get("APP_HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"app: listening on {host}:{port}, database {DB_PATH}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
