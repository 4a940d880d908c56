"""`meson install` into a temporary DESTDIR: the files land where users look
for them, and the installed litefs runs an app with the installed library."""

import json
import os
import subprocess

from litefs_cluster import BUILD


def test_install_into_destdir_and_run(tmp_path):
    dest = tmp_path / "dest"
    p = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    prefix = subprocess.run(["meson", "introspect", str(BUILD), "--buildoptions"], capture_output=True,
                            text=True, timeout=60).stdout
    opts = {o["name"]: o["value"] for o in json.loads(prefix)}
    root = dest / opts["prefix"].lstrip("/")
    litefs = root / opts["bindir"] / "litefs"
    lib = root / opts["libdir"] / "liblitefs.so"
    for f in (litefs, lib, root / opts["includedir"] / "litefs.h",
              root / opts["libdir"] / "pkgconfig" / "litefs.pc",
              root / opts["datadir"] / "doc" / "litefs-vfs" / "examples" / "litefs.yml"):
        assert f.exists(), f

    out = subprocess.run([str(litefs), "version"], capture_output=True, text=True, timeout=10).stdout
    assert out.startswith("litefs 0.") and "commit " in out
    assert "litefs run" in subprocess.run([str(litefs), "--help"], capture_output=True, text=True).stdout

    # pkg-config finds the header under the (relocated) prefix.
    cflags = subprocess.run(["pkg-config", f"--define-variable=prefix={root}", "--cflags", "--libs", "litefs"],
                            capture_output=True,
                            text=True, env={**os.environ, "PKG_CONFIG_PATH": str(root / opts["libdir"] / "pkgconfig")})
    assert cflags.returncode == 0, cflags.stderr
    assert f"-I{root / opts['includedir']}" in cflags.stdout
    assert f"-L{root / opts['libdir']}" in cflags.stdout and "-llitefs" in cflags.stdout

    # The example config, pointed at temporary directories, runs the installed
    # binary; its exec'd app gets the installed library (found next to bin/).
    work = tmp_path / "work"
    (work / "db").mkdir(parents=True)
    cfg = (root / opts["datadir"] / "doc" / "litefs-vfs" / "examples" / "litefs.yml").read_text()
    cfg = cfg.replace('"/var/lib/app/db"', f'"{work}/db"').replace('"/var/lib/litefs"', f'"{work}/data"')
    cfg = cfg.replace('":20202"', '"127.0.0.1:0"').replace('":8080"', '"127.0.0.1:0"')
    (work / "litefs.yml").write_text(cfg)
    script = f'echo "$LD_PRELOAD" > {work}/preload; sqlite3 {work}/db/app.db "CREATE TABLE t(x); INSERT INTO t VALUES (1);"'
    run = subprocess.run([str(litefs), "run", "-config", str(work / "litefs.yml"), "--", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (work / "preload").read_text().strip() == str(lib.resolve())
    assert (work / "db" / "app.db-pos").read_text().startswith("0000000000000002/")
