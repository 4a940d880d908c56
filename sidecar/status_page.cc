// See status_page.h. The page renders /info with a few lines of script.
#include "sidecar/status_page.h"

namespace litefs {

std::string_view StatusPageHtml() {
  static constexpr std::string_view kHtml = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>litefs node</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #1d2430; background: #f7f8fa; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  .role { display: inline-block; padding: .15em .6em; border-radius: 1em; font-weight: 600; }
  .primary { background: #d6f5df; color: #11602c; } .replica { background: #dde8fb; color: #1c4587; }
  .down { background: #fde2e1; color: #8a1c17; }
  table { border-collapse: collapse; margin: .6em 0 1.4em; background: #fff; min-width: 32em; }
  th, td { text-align: left; padding: .35em .8em; border-bottom: 1px solid #e3e6eb; }
  th { font-weight: 600; background: #eef0f4; }
  td.num { font-family: ui-monospace, monospace; }
  .muted { color: #6b7380; }
</style>
</head>
<body>
<h1>litefs node <span id="node" class="muted"></span></h1>
<p>Role: <span id="role" class="role">…</span> &nbsp; Primary: <b id="primary">…</b>
   &nbsp; Lag: <b id="lag">…</b> <span class="muted">· updated <span id="updated">never</span></span></p>
<h2>Databases</h2>
<table><thead><tr><th>database</th><th>TXID</th><th>checksum</th></tr></thead><tbody id="dbs"></tbody></table>
<h2>Connected replicas</h2>
<table><thead><tr><th>node</th><th>address</th><th>connected</th></tr></thead><tbody id="replicas"></tbody></table>
<script>
"use strict";
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
function rows(id, list, make) {
  const body = document.getElementById(id);
  body.replaceChildren(...list.map(x => { const tr = document.createElement("tr"); tr.append(...make(x)); return tr; }));
  if (list.length === 0) { const tr = document.createElement("tr"); tr.append(cell("none", "muted")); body.append(tr); }
}
async function refresh() {
  try {
    const info = await (await fetch("/info", {cache: "no-store"})).json();
    document.getElementById("node").textContent = info.nodeID;
    const role = document.getElementById("role");
    role.textContent = info.isPrimary ? "primary" : "replica";
    role.className = "role " + (info.isPrimary ? "primary" : "replica");
    document.getElementById("primary").textContent =
      (info.primary && info.primary.hostname) || (info.isPrimary ? "this node" : "unknown");
    document.getElementById("lag").textContent = info.lagMs == null ? "n/a" : info.lagMs + " ms";
    rows("dbs", Object.entries(info.dbs || {}).sort(), ([name, pos]) =>
      [cell(name), cell(String(parseInt(pos.txid, 16)), "num"), cell(pos.checksum, "num")]);
    rows("replicas", info.replicas || [], r => [cell(r.nodeID, "num"), cell(r.address), cell(r.since)]);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    const role = document.getElementById("role");
    role.textContent = "unreachable"; role.className = "role down";
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
)html";
  return kHtml;
}

}  // namespace litefs
