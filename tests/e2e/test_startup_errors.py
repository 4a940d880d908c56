"""Bad configuration stops startup with a message naming the problem."""

import socket
import subprocess

from litefs_cluster import LITEFS


def run_litefs(config_path, timeout=10):
    return subprocess.run([str(LITEFS), "run", "-config", str(config_path)],
                          capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path, body):
    (tmp_path / "dir").mkdir(exist_ok=True)
    path = tmp_path / "litefs.yml"
    path.write_text(f"dir: {tmp_path / 'dir'}\n" + body)
    return path


def test_unknown_key_names_the_key_and_line(tmp_path):
    path = write_config(tmp_path, "lease:\n  type: static\n  cnadidate: true\n")
    p = run_litefs(path)
    assert p.returncode == 2
    assert 'unknown config key "lease.cnadidate"' in p.stderr
    assert "line 4" in p.stderr


def test_missing_config_file(tmp_path):
    p = run_litefs(tmp_path / "nope.yml")
    assert p.returncode == 2
    assert "config file not found" in p.stderr and "nope.yml" in p.stderr


def test_unusable_address_names_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_config(tmp_path, f'http:\n  addr: "127.0.0.1:{port}"\n'
                                      "lease:\n  type: static\n  candidate: true\n")
        p = run_litefs(path)
    assert p.returncode == 1
    assert f"127.0.0.1:{port}" in p.stderr
    assert "address already in use" in p.stderr


def test_unsupported_lease_type(tmp_path):
    path = write_config(tmp_path, "lease:\n  type: consul\n")
    p = run_litefs(path)
    assert p.returncode == 2
    assert 'lease.type "consul" is not supported' in p.stderr


def test_missing_dir(tmp_path):
    path = tmp_path / "litefs.yml"
    path.write_text(f"dir: {tmp_path / 'absent'}\nlease:\n  type: static\n  candidate: true\n"
                    'http:\n  addr: "127.0.0.1:0"\n')
    p = run_litefs(path)
    assert p.returncode == 1
    assert str(tmp_path / "absent") in p.stderr


def test_second_sidecar_on_the_same_data_dir_is_refused(cluster):
    from litefs_cluster import free_port
    n = cluster.primary
    path = n.config.parent / "second.yml"
    path.write_text(n.config.read_text().replace(f"127.0.0.1:{n.port}\"\n",
                                                 f"127.0.0.1:{free_port()}\"\n", 1))
    p = run_litefs(path)
    assert p.returncode == 1
    assert f"another litefs is using data dir {n.dir}/.litefs (pid {n.proc.pid})" in p.stderr
    # The running node is unaffected.
    n.sqlite("app.db", "CREATE TABLE t(x);")
    cluster.wait_replicated("app.db")


def test_second_sidecar_on_the_same_dir_is_refused(cluster, tmp_path):
    """Another data dir but the same managed dir: it would take over the
    commit socket and record the apps' commits in a second history."""
    from litefs_cluster import free_port
    n = cluster.primary
    path = tmp_path / "second.yml"
    path.write_text(n.config.read_text().replace(f"127.0.0.1:{n.port}\"\n", f"127.0.0.1:{free_port()}\"\n", 1)
                    + f"data:\n  dir: {tmp_path / 'other-data'}\n")
    p = run_litefs(path)
    assert p.returncode == 1
    assert f"another litefs serves dir {n.dir}" in p.stderr
    n.sqlite("app.db", "CREATE TABLE t(x);")
    cluster.wait_replicated("app.db")
