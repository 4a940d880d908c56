"""Registering the VFS without LD_PRELOAD: as a SQLite extension (CLI .load,
Python's load_extension, Node's better-sqlite3 which bundles its own SQLite)
and through the C API of litefs.h in a program that links SQLite statically.
Each must replicate, and the VFS must stay registered after the loading
connection closes."""

import os
import shutil
import subprocess

import pytest

from litefs_cluster import BUILD, LIBLITEFS, PYTHON, ROOT

EXTENSION = str(LIBLITEFS)[: -len(".so")]  # SQLite adds the suffix itself
STATIC_APP = BUILD / "tests" / "apps" / "static_sqlite_app"
NODE_MODULES = BUILD / "npm" / "node_modules"


def plain_env(node):
    env = node.env()
    env.pop("LD_PRELOAD")
    return env


def replica_rows(cluster, db, sql):
    cluster.wait_replicated(db)
    r = cluster.replica
    assert r.path(db).read_bytes() == cluster.primary.path(db).read_bytes()
    return subprocess.run(["sqlite3", str(r.path(db)), sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_cli_dot_load(cluster):
    p = cluster.primary
    res = subprocess.run(["sqlite3", ":memory:", f".load {EXTENSION}", f".open {p.path('app.db')}",
                          "CREATE TABLE t(x); INSERT INTO t VALUES ('from .load');"],
                         env=plain_env(p), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert replica_rows(cluster, "app.db", "SELECT x FROM t") == "from .load"


def test_python_load_extension_outlives_the_loading_connection(cluster):
    p = cluster.primary
    p_env = plain_env(p)
    res = subprocess.run([PYTHON, "-c", f"""
import sqlite3
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension({EXTENSION!r})
loader.close()
db = sqlite3.connect({str(p.path('app.db'))!r})
db.execute("CREATE TABLE t(x)")
db.execute("INSERT INTO t VALUES ('from load_extension')")
db.commit()
"""], env=p_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert replica_rows(cluster, "app.db", "SELECT x FROM t") == "from load_extension"


def test_extension_on_a_replica_refuses_writes(cluster):
    r = cluster.replica
    res = subprocess.run(["sqlite3", ":memory:", f".load {EXTENSION}", f".open {r.path('app.db')}",
                          "CREATE TABLE t(x);"], env=plain_env(r), capture_output=True, text=True)
    assert res.returncode != 0
    assert "readonly" in res.stderr


@pytest.mark.skipif(not STATIC_APP.exists(), reason="no static libsqlite3.a to link against")
def test_static_sqlite_with_the_c_api(cluster):
    p = cluster.primary
    res = subprocess.run([str(STATIC_APP), str(p.path("app.db")),
                          "CREATE TABLE t(x); INSERT INTO t VALUES ('static');"],
                         env=plain_env(p), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "vfs litefs"
    assert replica_rows(cluster, "app.db", "SELECT x FROM t") == "static"
    # Without the C API call the static SQLite would write unreplicated;
    # LD_PRELOAD alone must not be mistaken for it.
    assert "litefs_register" in (ROOT / "tests" / "apps" / "static_sqlite_app.c").read_text()


def test_better_sqlite3_loads_the_extension(cluster):
    if not shutil.which("node") or not (NODE_MODULES / "better-sqlite3").exists():
        pytest.fail("better-sqlite3 is not installed (scripts/setup installs it into build/npm)")
    p = cluster.primary
    script = f"""
const Database = require('better-sqlite3');
const loader = new Database(':memory:');
loader.loadExtension({EXTENSION!r});
loader.close();
const db = new Database({str(p.path('app.db'))!r});
db.exec("CREATE TABLE t(x)");
const insert = db.prepare("INSERT INTO t VALUES (?)");
db.transaction(() => {{ for (let i = 0; i < 10; i++) insert.run('node ' + i); }})();
db.close();
"""
    env = plain_env(p)
    env["NODE_PATH"] = str(NODE_MODULES)
    res = subprocess.run(["node", "-e", script], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert replica_rows(cluster, "app.db", "SELECT count(*) FROM t") == "10"
