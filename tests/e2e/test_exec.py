"""`litefs run -- cmd` and the `exec` key: the app starts once the node is
ready, with LD_PRELOAD and LITEFS_DIR, gets the signals, and its exit status
becomes litefs's."""

import signal

from litefs_cluster import LIBLITEFS, Node, PYTHON, free_port, wait_for


def make_node(tmp_path, name="n", candidate=True, primary_port=None, extra="", exec_args=None):
    port = free_port()
    return Node(tmp_path, name, port, primary_port or port, candidate, extra_config=extra,
                exec_args=exec_args)


def test_app_status_and_environment(tmp_path):
    out = tmp_path / "env.txt"
    n = make_node(tmp_path, exec_args=["sh", "-c", f'echo "$LD_PRELOAD|$LITEFS_DIR" > {out}; exit 7'])
    n.start(wait=False)
    assert n.proc.wait(20) == 7
    preload, litefs_dir = out.read_text().strip().split("|")
    assert preload.split(":")[0] == str(LIBLITEFS.resolve())
    assert litefs_dir == str(n.dir)


def test_signals_are_forwarded_and_a_clean_exit_is_zero(tmp_path):
    got = tmp_path / "got"
    ready = tmp_path / "ready"
    app = (f"import signal, sys\n"
           f"def on(sig, frame):\n"
           f"    open({str(got)!r}, 'w').write(str(sig)); sys.exit(0)\n"
           f"signal.signal(signal.SIGTERM, on)\n"
           f"open({str(ready)!r}, 'w').close()\n"
           f"while True: signal.pause()\n")
    n = make_node(tmp_path, exec_args=[PYTHON, "-c", app])
    n.start(wait=False)
    wait_for(ready.exists, 20, what="the app to start")
    n.proc.send_signal(signal.SIGTERM)
    assert n.proc.wait(20) == 0
    assert got.read_text() == str(int(signal.SIGTERM))
    assert "forwarding to the app" in n.log_text()


def test_replica_app_starts_after_catching_up(tmp_path):
    pport = free_port()
    primary = Node(tmp_path, "primary", pport, pport, True)
    primary.start()
    try:
        primary.sqlite("app.db", "CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);")
        seen = tmp_path / "seen-pos"
        # The replica's app records the position it finds at start: it must
        # already be the primary's (exec waits for READY).
        # (Written aside and renamed: the test must not read it half-written.)
        app = (f"import os; open({str(seen) + '.tmp'!r}, 'w').write(open(os.environ['LITEFS_DIR'] + '/app.db-pos').read()); "
               f"os.rename({str(seen) + '.tmp'!r}, {str(seen)!r})")
        replica = Node(tmp_path, "replica", free_port(), pport, False,
                       exec_args=[PYTHON, "-c", app + "; import signal; signal.pause()"])
        replica.start(wait=False)
        try:
            wait_for(seen.exists, 20, what="the replica's app")
            assert seen.read_text() == primary.pos("app.db")
        finally:
            replica.stop()
    finally:
        primary.stop()


def test_failing_setup_command_stops_litefs(tmp_path):
    marker = tmp_path / "never"
    n = make_node(tmp_path, extra=f"exec:\n  - cmd: \"sh -c 'exit 3'\"\n  - cmd: \"touch {marker}\"\n")
    n.start(wait=False)
    assert n.proc.wait(20) == 1
    assert "exec setup command failed: exit status 3" in n.log_text()
    assert not marker.exists()


def test_if_candidate_skips_commands_on_replicas(tmp_path):
    pport = free_port()
    primary = Node(tmp_path, "primary", pport, pport, True).start()
    try:
        ran = tmp_path / "ran"
        r = Node(tmp_path, "replica", free_port(), pport, False,
                 extra_config=f"exec:\n  - cmd: \"touch {ran}.candidate\"\n    if-candidate: true\n"
                              f"  - cmd: \"sh -c 'touch {ran}.all; exit 5'\"\n")
        r.start(wait=False)
        assert r.proc.wait(20) == 5
        assert (tmp_path / "ran.all").exists()
        assert not (tmp_path / "ran.candidate").exists()
    finally:
        primary.stop()


def test_signal_during_a_setup_command_starts_no_app(tmp_path):
    started, app_ran = tmp_path / "setup-started", tmp_path / "app-ran"
    n = make_node(tmp_path, extra=f"exec:\n  - cmd: \"sh -c 'touch {started}; exec sleep 30'\"\n"
                                  f"  - cmd: \"touch {app_ran}\"\n")
    n.start(wait=False)
    wait_for(started.exists, 20, what="the setup command")
    n.proc.send_signal(signal.SIGTERM)
    assert n.proc.wait(20) == 0
    assert not app_ran.exists()
