"""The node's status page (GET / on the node API) in headless Chromium: it
renders the live role, primary, positions, lag and replicas, and keeps
refreshing itself."""

import json
import os
import subprocess

import pytest

from litefs_cluster import BUILD, ROOT

SCRIPT = ROOT / "tests" / "e2e" / "status_page_check.js"
NODE_MODULES = BUILD / "npm" / "node_modules"


def render(node, db, txid, shot, then=None):
    """Renders the page until it shows `txid`; `then` (a commit) runs once it
    does, and the page must then show txid + 1 without being reloaded."""
    args = ["node", str(SCRIPT), f"http://127.0.0.1:{node.port}/", db, str(txid), str(shot)]
    if then:
        args.append(str(txid + 1))
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
    try:
        first = p.stdout.readline()
        if first.strip() != "shown":
            p.kill()
            raise AssertionError(first + p.stderr.read()[-3000:])
        if then:
            then()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_status_page_shows_live_values(cluster, tmp_path):
    if not (NODE_MODULES / "playwright-core").exists():
        pytest.fail("playwright-core missing from build/npm: run ./scripts/setup")
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    cluster.wait_replicated("app.db")
    txid = int(p.pos("app.db").split("/")[0], 16)

    shown = render(r, "app.db", txid, tmp_path / "replica.png")
    assert shown["role"] == "replica"
    assert shown["primary"] == "primary-host"
    assert shown["lag"].endswith(" ms")
    assert shown["dbs"] == [["app.db", str(txid), p.pos("app.db").strip().split("/")[1]]]
    assert shown["external"] == []  # no external assets
    assert (tmp_path / "replica.png").stat().st_size > 2000

    # The primary's page lists the replica, and follows a new commit by itself.
    shown = render(p, "app.db", txid, tmp_path / "primary.png",
                   then=lambda: p.sqlite("app.db", "INSERT INTO t VALUES (2);"))
    assert shown["dbs"][0][1] == str(txid + 1)
    assert shown["role"] == "primary"
    assert shown["lag"] == "0 ms"
    assert len(shown["replicas"]) == 1 and shown["replicas"][0][0] == r.info()["nodeID"]
