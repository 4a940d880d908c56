"""litefs-js, LiteFS's npm helper, works unchanged against our primary and
replica: it reads LITEFS_DIR/.primary and LITEFS_DIR/<db>-pos."""

import json
import os
import socket
import subprocess

import pytest

from litefs_cluster import BUILD, ROOT

CHECK = ROOT / "tests" / "e2e" / "litefs_js_check.mjs"
NODE_MODULES = BUILD / "npm" / "node_modules"


def run_litefs_js(node, client_tx):
    if not (NODE_MODULES / "litefs-js").exists():
        pytest.fail("litefs-js missing from build/npm: run ./scripts/setup")
    env = {**os.environ, "LITEFS_DIR": str(node.dir), "DATABASE_FILENAME": "app.db",
           "NODE_MODULES": str(NODE_MODULES)}
    env.pop("LD_PRELOAD", None)
    p = subprocess.run(["node", str(CHECK), str(client_tx)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_litefs_js_on_primary_and_replica(cluster):
    p, r = cluster.primary, cluster.replica
    p.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);")
    cluster.wait_replicated("app.db")
    txid = int(p.pos("app.db").split("/")[0], 16)
    me = socket.gethostname()

    on_primary = run_litefs_js(p, txid)
    assert on_primary["info"] == {"primaryInstance": me, "currentInstance": me, "currentIsPrimary": True}
    assert on_primary["syncInfo"] == on_primary["info"]
    assert on_primary["txnum"] == txid
    assert on_primary["consistency"]["type"] == "delete-cookie"  # the primary is always current
    assert on_primary["cookie"].startswith(f"txnum={txid};")
    assert on_primary["ensurePrimary"] == {"replayed": False, "status": None, "flyReplay": None}
    assert on_primary["setCookie"][0].startswith(f"txnum={txid};")

    # The replica names its primary ("primary-host" in these tests' config).
    on_replica = run_litefs_js(r, txid)
    assert on_replica["info"] == {"primaryInstance": "primary-host", "currentInstance": me,
                                  "currentIsPrimary": False}
    assert on_replica["txnum"] == txid
    assert on_replica["consistency"]["type"] == "delete-cookie"  # caught up with the cookie
    assert on_replica["upToDate"] is True
    assert on_replica["ensurePrimary"] == {"replayed": True, "status": 409, "flyReplay": "instance=primary-host"}
    # A client ahead of the replica is told to replay on the primary.
    ahead = run_litefs_js(r, txid + 5)
    assert ahead["consistency"]["type"] == "replay"
    assert ahead["consistency"]["instance"] == "primary-host"
    assert ahead["upToDate"] is False
