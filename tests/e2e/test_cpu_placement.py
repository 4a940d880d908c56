"""Where the sidecar's threads run (`cpus`, sidecar/cpu_placement.h): every
thread of the sidecar where the log says, the app it runs under `exec` on the
CPUs litefs was started with, and a bad value refused at startup."""

import glob
import os
import re
import subprocess

import pytest

from litefs_cluster import LITEFS, Node, free_port, wait_for


def make_node(tmp_path, extra="", exec_args=None):
    port = free_port()
    return Node(tmp_path, "n", port, port, True, extra_config=extra, exec_args=exec_args)


def thread_cpus(pid):
    """Cpus_allowed_list of each thread of `pid`."""
    out = set()
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        for line in open(status):
            if line.startswith("Cpus_allowed_list:"):
                out.add(line.split(":", 1)[1].strip())
    return out


def parse(text):
    out = []
    for item in text.split(","):
        a, _, b = item.partition("-")
        out += range(int(a), int(b or a) + 1)
    return out


def logged_placement(node):
    m = re.search(r"cpu placement cpus=(\S+) reason=\"([^\"]*)\"", node.log_text())
    return m and (m.group(1), m.group(2))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_configured_cpus_hold_every_thread_and_exec_keeps_the_started_ones(tmp_path):
    started = os.sched_getaffinity(0)
    first = min(started)
    seen = tmp_path / "app-cpus"
    n = make_node(tmp_path, extra=f'cpus: "{first}"\n',
                  exec_args=["sh", "-c", f"grep Cpus_allowed_list /proc/self/status > {seen}.tmp; "
                                         f"mv {seen}.tmp {seen}; exec sleep 30"])
    n.start()
    try:
        # A write makes the sidecar start its worker threads too.
        n.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        assert thread_cpus(n.proc.pid) == {str(first)}
        assert len(glob.glob(f"/proc/{n.proc.pid}/task/*")) > 1
        wait_for(seen.exists, 20, what="the app to report its CPUs")
        app_cpus = seen.read_text().split(":", 1)[1].strip()
        assert set(parse(app_cpus)) == started
        assert logged_placement(n) == (str(first), "cpus: as configured")
    finally:
        n.stop()


def test_auto_placement_is_what_the_log_says(tmp_path):
    n = make_node(tmp_path).start()
    try:
        n.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        cpus, reason = logged_placement(n)
        assert set(parse(cpus)) <= os.sched_getaffinity(0)
        assert [set(parse(c)) for c in thread_cpus(n.proc.pid)] == [set(parse(cpus))]
        if reason.startswith("keeping off CPU"):
            kept_off = set(parse(reason.split()[3].rstrip(",")))
            assert kept_off.isdisjoint(parse(cpus))
            assert kept_off | set(parse(cpus)) == os.sched_getaffinity(0)
        else:
            assert set(parse(cpus)) == os.sched_getaffinity(0)
    finally:
        n.stop()


@pytest.mark.parametrize("value,message", [
    ("fast", "cpus: expected auto, all or a CPU list such as 0-1"),
    ("3-1", "cpus: expected auto, all or a CPU list such as 0-1"),
    ("4000", "is not within the CPUs this process may use"),
])
def test_a_bad_value_is_refused_at_startup(tmp_path, value, message):
    (tmp_path / "dir").mkdir()
    config = tmp_path / "litefs.yml"
    config.write_text(f"dir: {tmp_path / 'dir'}\nlease:\n  type: static\n  candidate: true\n"
                      f"cpus: \"{value}\"\n")
    p = subprocess.run([str(LITEFS), "run", "-config", str(config)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert message in p.stderr
