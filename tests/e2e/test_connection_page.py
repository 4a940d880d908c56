"""The connection page (vfs/connection_page.h) at the protocol level: a
client speaks to the commit socket as liblitefs.so does, maps the page the
sidecar hands over with its answer to Hello, and checks what the sidecar
makes of the marks: a writer that vanishes marked is checked, one that cleared its mark
is not. (A commit marked in flight holds a step-down back:
test_commit_window.py.) With the page comes the sidecar lock page, whose
robust mutex tells apps whether the sidecar still serves them."""

import mmap
import os
import signal
import socket
import struct

import pytest

from litefs_cluster import wait_for

PROTOCOL_VERSION = 7  # vfs/commit_protocol.h kProtocolVersion
HELLO, BEGIN, OK = 1, 2, 0x81
WRITING, COMMITTING, DROPPED = 8, 16, 24  # word offsets in the page
LOCK_WORD = 64  # the futex word of the sidecar lock page's mutex
FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x40000000, 0x3FFFFFFF


class App:
    """One connection to the sidecar, with its page mapped."""

    def __init__(self, node):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(node.dir / ".litefs.sock"))
        self.send(HELLO, struct.pack("<II", PROTOCOL_VERSION, os.getpid()))
        body, fds = self.receive()
        assert body[0] == OK, body
        assert len(fds) == 2, "no connection page and sidecar lock page with the answer to Hello"
        self.page = mmap.mmap(fds[0], 4096)
        self.fd = fds[0]  # kept open for tests that try to misuse it
        assert self.page[:8] == b"LFSCONN1"
        self.lock_fd = fds[1]
        self.lock = mmap.mmap(fds[1], 4096, prot=mmap.PROT_READ)
        assert self.lock[:8] == b"LFSLOCK1"

    def send(self, kind, payload):
        self.sock.sendall(struct.pack("<IB", len(payload) + 1, kind) + payload)

    def receive(self):
        data, fds, _, _ = socket.recv_fds(self.sock, 4096, 2)
        (length,) = struct.unpack_from("<I", data)
        assert len(data) == 4 + length, data  # one small answer, whole
        return data[4:], fds

    def begin(self, db):
        self.send(BEGIN, struct.pack("<I", len(db)) + db.encode())
        body, _ = self.receive()
        assert body[0] == OK, body
        txid, checksum = struct.unpack_from("<QQ", body, 1)
        slot = struct.unpack_from("<I", body, 17)[0] if len(body) > 17 else 0
        return slot

    def word(self, offset):
        return struct.unpack_from("<Q", self.page, offset)[0]

    def lock_word(self):
        return struct.unpack_from("<I", self.lock, LOCK_WORD)[0]

    def mark(self, offset, value):
        struct.pack_into("<Q", self.page, offset, value)

    def close(self):
        self.sock.close()
        os.close(self.fd)
        os.close(self.lock_fd)


def test_an_approved_writer_that_vanishes_marked_is_checked(cluster):
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
    cluster.wait_replicated("app.db")
    app = App(p)
    slot = app.begin("app.db")
    assert 1 <= slot <= 504  # the database's capture-armed word in .litefs.window
    assert app.word(WRITING) == 1  # the sidecar marked the approved transaction
    app.close()
    wait_for(lambda: "a writer disconnected mid-transaction" in p.log_text(),
             what="the sidecar to check the database")


def test_a_writer_that_ended_its_transaction_leaves_quietly(cluster):
    p = cluster.primary
    p.sqlite("app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
    cluster.wait_replicated("app.db")
    app = App(p)
    app.begin("app.db")
    app.mark(WRITING, 0)  # as the VFS does after its commit or rollback
    app.close()
    # A later connection's own check shows the first one's close was read.
    second = App(p)
    second.begin("app.db")
    second.close()
    wait_for(lambda: p.log_text().count("a writer disconnected mid-transaction") == 1,
             what="the second writer's check")


def test_an_app_cannot_shrink_the_page_under_the_sidecar(cluster):
    """The page is sealed at its size: an app that truncated it would make the
    sidecar fault (SIGBUS) the next time it reads the marks."""
    p = cluster.primary
    app = App(p)
    with pytest.raises(PermissionError):
        os.ftruncate(app.fd, 0)
    app.mark(WRITING, 1)
    app.close()  # the sidecar reads the page as the connection goes
    assert p.info() is not None
    second = App(p)  # and still serves
    second.close()


def test_the_sidecar_lock_names_the_sidecar_until_the_kernel_marks_it_dead(cluster):
    """SIGKILL gives the sidecar no chance to say anything: the kernel itself
    marks the robust mutex its loop thread held (FUTEX_OWNER_DIED), which is
    what the app reads instead of peeking at its socket."""
    p = cluster.primary
    app = App(p)
    assert app.lock_word() & FUTEX_TID_MASK == p.proc.pid  # the loop thread is the main thread
    assert app.word(DROPPED) == 0
    p.stop(signal.SIGKILL)
    assert app.lock_word() == FUTEX_OWNER_DIED
    app.close()


def test_a_sidecar_that_stops_releases_its_lock(cluster):
    p = cluster.primary
    app = App(p)
    assert p.stop() == 0
    assert app.lock_word() & FUTEX_TID_MASK == 0
    assert app.lock_word() & FUTEX_OWNER_DIED == 0
    app.close()


def test_apps_cannot_write_the_sidecar_lock(cluster):
    """glibc follows the pointers inside the mutex when the sidecar unlocks it:
    the page is sealed against writable mappings, and the sidecar lives on."""
    p = cluster.primary
    app = App(p)
    with pytest.raises(PermissionError):
        mmap.mmap(app.lock_fd, 4096)  # shared and writable
    with pytest.raises(OSError):
        os.write(app.lock_fd, b"x")
    app.close()
    assert p.info() is not None


def test_a_dropped_connection_is_marked_on_its_page(cluster):
    """A connection the sidecar drops (here for a bad message) is marked
    before its socket closes: the app stops trusting the lock for it."""
    p = cluster.primary
    app = App(p)
    other = App(p)
    app.sock.sendall(struct.pack("<IB", 1, 0x7F))  # no such message type
    wait_for(lambda: app.word(DROPPED) == 1, what="the page to be marked dropped")
    assert app.sock.recv(1) == b""
    assert other.word(DROPPED) == 0
    assert app.lock_word() & FUTEX_TID_MASK == p.proc.pid  # still serving the others
    app.close()
    other.close()
