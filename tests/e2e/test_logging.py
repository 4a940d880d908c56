"""Operations: log.format json and log.file, reopened on SIGHUP for logrotate."""

import json
import signal

from litefs_cluster import Node, free_port, wait_for


def test_json_log_file_reopened_on_sighup(tmp_path):
    port = free_port()
    logfile = tmp_path / "litefs.log.json"
    n = Node(tmp_path, "n", port, port, True, extra_config=f"log:\n  format: json\n  file: {logfile}\n")
    n.start()
    try:
        lines = [json.loads(l) for l in logfile.read_text().splitlines()]
        assert any(l["msg"] == "this node is the primary" and l["level"] == "INFO" for l in lines)
        assert all({"time", "level", "msg"} <= set(l) for l in lines)
        rotated = tmp_path / "litefs.log.json.1"
        logfile.rename(rotated)
        n.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: logfile.exists() and "log reopened" in logfile.read_text(), 10,
                 what="the reopened log file")
        n.sqlite("a.db", "CREATE TABLE t(x)")
        assert n.proc.poll() is None  # SIGHUP does not stop litefs
        before = rotated.read_text()
    finally:
        n.stop()
    assert "log reopened" not in before
    assert "stopped" in logfile.read_text()
