"""Proxy benchmarks for scripts/bench (never tests).

- GET keep-alive throughput with wrk through the proxy against hitting the
  same nginx directly (nginx, wrk, the proxy and the sidecar share 2 cores);
- added latency p50/p99 at concurrency 1;
- read-your-writes delay: a write through the replica's proxy, then the
  same client's read released on the replica, against a plain read;
- one large upload through a replica's proxy to the primary's app: the
  sidecars' peak RSS growth.
"""

import http.client
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from litefs_cluster import Node, free_port, wait_for
from proxy_cluster import ProxyCluster

NGINX_CONF = """worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {tmp}/www; }}
  }}
}}
"""


def wrk(url, conns, seconds, latency=False):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, int(seconds))}s", url] + (["--latency"] if latency else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 5 + 30)
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk {url}: {out} {p.stderr}")
    rps = float(m.group(1))
    lat = {}
    for pct, val, unit in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out):
        lat[pct] = float(val) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
    return rps, lat


def rss_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def throughput_and_latency(tmp, seconds, runs):
    if not shutil.which("wrk") or not shutil.which("nginx"):
        print("proxy throughput: not measured (needs wrk and nginx: apt-get install wrk nginx-light)")
        return
    os.chmod(tmp, 0o755)  # nginx's workers run as www-data and must read www/
    tmp = Path(tmp) / "nginx"
    (tmp / "www").mkdir(parents=True)
    (tmp / "www" / "index.html").write_text("hello\n")
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port))
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pport = free_port()
    proxy_port = free_port()
    node = Node(tmp, "proxy-node", pport, pport, True,
                extra_config=(f"proxy:\n  addr: \"127.0.0.1:{proxy_port}\"\n"
                              f"  target: \"127.0.0.1:{port}\"\n  db: bench.db\n"))
    try:
        node.start()
        for p in (port, proxy_port):
            wait_for(lambda p=p: subprocess.run(["curl", "-sf", f"http://127.0.0.1:{p}/"],
                                                capture_output=True).returncode == 0, 10)
        direct, proxied = [], []
        for _ in range(runs):
            direct.append(wrk(f"http://127.0.0.1:{port}/", 32, seconds)[0])
            proxied.append(wrk(f"http://127.0.0.1:{proxy_port}/", 32, seconds)[0])
        d, p = statistics.median(direct), statistics.median(proxied)
        print(f"{'GET keep-alive req/s (c=32)':28} {d:12.0f} {p:12.0f} {p / d:7.2f} {0.5:7.2f}"
              "   (nginx direct vs through the proxy)")
        _, ld = wrk(f"http://127.0.0.1:{port}/", 1, seconds, latency=True)
        _, lp = wrk(f"http://127.0.0.1:{proxy_port}/", 1, seconds, latency=True)
        print(f"added latency at c=1: p50 +{lp['50'] - ld['50']:.0f} us "
              f"({ld['50']:.0f} -> {lp['50']:.0f}), p99 +{lp['99'] - ld['99']:.0f} us "
              f"({ld['99']:.0f} -> {lp['99']:.0f})")
    finally:
        node.stop()
        nginx.terminate()
        nginx.wait(10)


def read_your_writes_and_upload(tmp, upload_mib):
    c = ProxyCluster(Path(tmp) / "ryw").start()
    try:
        rconn = http.client.HTTPConnection("127.0.0.1", c.replica.proxy_port, timeout=30)
        plain, after_write = [], []
        for i in range(200):
            t0 = time.perf_counter()
            rconn.request("GET", "/messages.json")
            rconn.getresponse().read()
            plain.append(time.perf_counter() - t0)
            rconn.request("POST", "/messages", body=f"text=ryw {i}",
                          headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
            resp = rconn.getresponse()
            resp.read()
            token = resp.getheader("Litefs-Txid")
            t0 = time.perf_counter()
            rconn.request("GET", "/messages.json", headers={"Litefs-Txid": token})
            body = rconn.getresponse().read()
            after_write.append(time.perf_counter() - t0)
            assert f"ryw {i}".encode() in body
        us = lambda xs, q: statistics.quantiles(xs, n=100)[q - 1] * 1e6
        print(f"read-your-writes on the replica: read after a forwarded write p50 {us(after_write, 50):.0f} us, "
              f"p99 {us(after_write, 99):.0f} us; plain read p50 {us(plain, 50):.0f} us, "
              f"p99 {us(plain, 99):.0f} us (200 writes, Python app)")
        if upload_mib:
            for n in c.nodes:
                Path(f"/proc/{n.proc.pid}/clear_refs").write_text("5")
            before = {n.name: rss_kb(n.proc.pid, "VmRSS") for n in c.nodes}
            t0 = time.monotonic()
            p = subprocess.run(f"head -c {upload_mib}M /dev/zero | curl -sS -T - -X POST "
                               f"{c.replica.url}/upload", shell=True, capture_output=True, text=True,
                               timeout=1800)
            took = time.monotonic() - t0
            assert f'"bytes": {upload_mib * 1024 * 1024}' in p.stdout, p.stdout + p.stderr
            grew = {n.name: (rss_kb(n.proc.pid, "VmHWM") - before[n.name]) / 1024 for n in c.nodes}
            print(f"{upload_mib} MiB upload through the replica's proxy to the primary's app in {took:.1f}s: "
                  f"replica sidecar +{grew['replica']:.1f} MiB, primary sidecar +{grew['primary']:.1f} MiB peak RSS")
    finally:
        c.stop()


def run_proxy_benchmarks(tmp, seconds, runs, upload_mib):
    throughput_and_latency(tmp, seconds, runs)
    read_your_writes_and_upload(tmp, upload_mib)
