"""The Kubernetes pod shape, without Kubernetes: the app and the litefs
sidecar run in separate mount, PID and network namespaces that share only
the volume directory (like an emptyDir), and a replica runs outside the pod.

    root netns (replica litefs, test client)
        | veth 10.252.<n>.0/30
    "side" netns + own mount/PID ns: litefs primary, proxy on :8080
        | veth 10.251.<n>.0/30
    "app" netns + own mount/PID ns: the example app under LD_PRELOAD

Each side mounts fresh tmpfs over /tmp and /run, so nothing is shared there;
the app reaches the sidecar through the Unix socket in the volume, and the
proxy reaches the app over the veth pair, never over a shared loopback."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from litefs_cluster import LIBLITEFS, LITEFS, PYTHON, ROOT, Node, free_port, wait_for

APP = ROOT / "examples" / "app" / "app.py"


def descendants(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out.append(int(k))
            out.extend(descendants(int(k)))
    return out


def stop_tree(p):
    """Stops a process started through `unshare --fork` and everything under it
    (unshare does not pass signals on). The command is PID 1 of its namespace,
    which ignores signals it has no handler for: litefs handles SIGTERM; the
    Python app gets SIGKILL."""
    import signal
    for pid in [*reversed(descendants(p.pid)), p.pid]:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        try:
            os.kill(pid, signal.SIGTERM if exe.endswith("/litefs") else signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed: {p.stderr}")
    return p


@pytest.fixture
def pod():
    if os.geteuid() != 0:
        pytest.skip("needs root for network and mount namespaces")
    n = os.getpid() % 200 + 20
    app_ns, side_ns = f"lfs-app-{n}", f"lfs-side-{n}"
    probe = sh("ip", "netns", "add", app_ns, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces: {probe.stderr.strip()}")
    # Outside /tmp: each namespace hides /tmp behind its own tmpfs.
    base = Path(tempfile.mkdtemp(prefix="litefs-pod.", dir="/var/tmp"))
    procs = []
    try:
        sh("ip", "netns", "add", side_ns)
        for ns in (app_ns, side_ns):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"lfa{n}", "type", "veth", "peer", "name", f"lfb{n}")
        sh("ip", "link", "set", f"lfa{n}", "netns", app_ns)
        sh("ip", "link", "set", f"lfb{n}", "netns", side_ns)
        sh("ip", "-n", app_ns, "addr", "add", f"10.251.{n}.1/30", "dev", f"lfa{n}")
        sh("ip", "-n", side_ns, "addr", "add", f"10.251.{n}.2/30", "dev", f"lfb{n}")
        sh("ip", "link", "add", f"lfc{n}", "type", "veth", "peer", "name", f"lfd{n}")
        sh("ip", "link", "set", f"lfd{n}", "netns", side_ns)
        sh("ip", "addr", "add", f"10.252.{n}.1/30", "dev", f"lfc{n}")
        sh("ip", "-n", side_ns, "addr", "add", f"10.252.{n}.2/30", "dev", f"lfd{n}")
        for ns, dev in ((app_ns, f"lfa{n}"), (side_ns, f"lfb{n}"), (side_ns, f"lfd{n}")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "link", "set", f"lfc{n}", "up")
        yield {"n": n, "app_ns": app_ns, "side_ns": side_ns, "base": base, "procs": procs,
               "app_ip": f"10.251.{n}.1", "side_ip": f"10.251.{n}.2", "side_outer_ip": f"10.252.{n}.2"}
    finally:
        for p in procs:
            if p.poll() is None:
                stop_tree(p)
        for ns in (app_ns, side_ns):
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", f"lfc{n}", check=False)
        shutil.rmtree(base, ignore_errors=True)


def isolated(ns, command, env=None):
    """`command` in netns `ns`, in new mount and PID namespaces with private /tmp and /run."""
    inner = "mount --make-rprivate / && mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run && exec \"$@\""
    return ["ip", "netns", "exec", ns, "unshare", "--mount", "--pid", "--fork", "--mount-proc",
            "sh", "-c", inner, "sh", *command]


def test_app_and_sidecar_share_only_the_volume(pod):
    base = pod["base"]
    volume = base / "volume"
    volume.mkdir()
    # The namespaces hide /tmp and /run, where the checkout itself may live:
    # run copies of the binary, the library and the app from the test's dir.
    bin_dir = base / "bin"
    bin_dir.mkdir()
    litefs, liblitefs, app_py = (Path(shutil.copy2(f, bin_dir)) for f in (LITEFS, LIBLITEFS, APP))
    api_port, proxy_port, app_port = 20202, 8080, 8081
    cfg = base / "side.yml"
    cfg.write_text(
        f"dir: {volume}\n"
        f"data:\n  dir: {base}/side-data\n"
        f"http:\n  addr: \"0.0.0.0:{api_port}\"\n"
        f"lease:\n  type: static\n  candidate: true\n  hostname: pod-primary\n"
        f"  advertise-url: \"http://{pod['side_outer_ip']}:{api_port}\"\n"
        f"proxy:\n  addr: \"0.0.0.0:{proxy_port}\"\n  target: \"{pod['app_ip']}:{app_port}\"\n"
        f"  db: guestbook.db\n  advertise-url: \"http://{pod['side_outer_ip']}:{proxy_port}\"\n")
    side_log = open(base / "side.log", "wb")
    side = subprocess.Popen(isolated(pod["side_ns"], [str(litefs), "run", "-config", str(cfg)]),
                            stdout=side_log, stderr=subprocess.STDOUT)
    pod["procs"].append(side)
    wait_for(lambda: (volume / ".litefs.sock").exists() or side.poll() is not None, 15,
             what="the sidecar's socket in the volume")
    assert side.poll() is None, (base / "side.log").read_text()

    # The app: its own namespaces, the shim, the volume as LITEFS_DIR.
    app_env = f"LD_PRELOAD={liblitefs} LITEFS_DIR={volume} APP_HOST=0.0.0.0 NODE_NAME=pod-app"
    app_log = open(base / "app.log", "wb")
    app = subprocess.Popen(isolated(pod["app_ns"], ["sh", "-c", f"{app_env} exec {PYTHON} {app_py} {app_port}"]),
                           stdout=app_log, stderr=subprocess.STDOUT)
    pod["procs"].append(app)

    def in_side(*curl_args):
        return subprocess.run(["ip", "netns", "exec", pod["side_ns"], "curl", "-sS", "-i", "--max-time", "10",
                               *curl_args], capture_output=True, text=True, timeout=30)

    wait_for(lambda: in_side(f"http://127.0.0.1:{proxy_port}/messages.json").stdout.startswith("HTTP/1.1 200"),
             20, what="the app behind the proxy")
    # A write through the proxy (side netns) to the app (app netns), captured by
    # the VFS and committed by the sidecar across the namespaces.
    r = in_side("-d", "text=across namespaces", f"http://127.0.0.1:{proxy_port}/messages")
    assert r.stdout.startswith("HTTP/1.1 303"), r.stdout + r.stderr
    assert "Set-Cookie: __txid=" in r.stdout
    pos = (volume / "guestbook.db-pos").read_text()
    assert int(pos.split("/")[0], 16) >= 2

    # A replica outside the pod follows the sidecar over the second veth pair.
    rport = free_port()
    replica = Node(base, "replica", rport, api_port, False)
    replica.config.write_text(replica.config.read_text().replace(
        f"http://127.0.0.1:{api_port}", f"http://{pod['side_outer_ip']}:{api_port}"))
    replica.start()
    pod["procs"].append(replica.proc)
    wait_for(lambda: replica.pos("guestbook.db") == (volume / "guestbook.db-pos").read_text(), 20,
             what="the replica to reach the pod's position")
    rows = replica.sqlite("guestbook.db", "SELECT text FROM messages").stdout
    assert "across namespaces" in rows
    assert (replica.dir / ".primary").read_text() == "primary-host\n"
    # The app cannot reach the sidecar's loopback: the proxy port answers only
    # on the sidecar's own addresses.
    probe = subprocess.run(["ip", "netns", "exec", pod["app_ns"], "curl", "-s", "--max-time", "2",
                            f"http://127.0.0.1:{proxy_port}/litefs/health"], capture_output=True, timeout=10)
    assert probe.returncode != 0
    info = json.loads(subprocess.run(["curl", "-sS", f"http://{pod['side_outer_ip']}:{api_port}/info"],
                                     capture_output=True, text=True, timeout=10).stdout)
    assert info["isPrimary"] is True
