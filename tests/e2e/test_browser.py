"""Read-your-writes as a user sees it: headless Chromium submits the
guestbook form on the replica's proxy and must find its own message on the
page it is redirected to, 100 times without a miss."""

import json
import os
import subprocess

import pytest

from litefs_cluster import BUILD, ROOT
from proxy_cluster import ProxyCluster

SCRIPT = ROOT / "tests" / "e2e" / "browser_read_your_writes.js"
NODE_MODULES = BUILD / "npm" / "node_modules"


def test_browser_sees_its_own_writes_on_the_replica(tmp_path):
    if not (NODE_MODULES / "playwright-core").exists() or not os.path.exists("/usr/bin/chromium"):
        pytest.fail("playwright-core (build/npm) or /usr/bin/chromium missing: run ./scripts/setup")
    c = ProxyCluster(tmp_path).start()
    try:
        shot = tmp_path / "page.png"
        p = subprocess.run(["node", str(SCRIPT), f"{c.replica.url}/", "100", str(shot)],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
        assert p.returncode == 0, p.stderr[-3000:]
        result = json.loads(p.stdout.strip().splitlines()[-1])
        assert result["submitted"] == 100
        assert result["misses"] == 0, result["first_miss"]
        assert "__txid" in result["cookie"]
        assert shot.stat().st_size > 1000
        # Every write went through the replica to the primary.
        assert int(c.primary.pos("guestbook.db").split("/")[0], 16) >= 101
    finally:
        c.stop()
