// Runs litefs-js (unchanged, from npm) in this process's LITEFS_DIR and
// prints what its exported functions answer, as JSON.
import { pathToFileURL } from "url";
// The package exports ESM only ("import" conditions): load its entry points
// by path from the test's node_modules.
const dist = process.env.NODE_MODULES + "/litefs-js/dist/";
const litefs = await import(pathToFileURL(dist + "index.js"));
const http = await import(pathToFileURL(dist + "http.js"));
const info = await litefs.getInstanceInfo();
const syncInfo = litefs.getInstanceInfoSync();
const txnum = await litefs.getTxNumber();
const clientTx = Number(process.argv[2]);
const consistency = await litefs.checkCookieForTransactionalConsistency(`txnum=${clientTx}`);
const upToDate = await litefs.waitForUpToDateTxNumber(clientTx, { timeoutMs: 50, intervalMs: 10 });
// The litefs-js/http helpers with a minimal response object.
const res = { status: null, headers: {}, ended: false,
              writeHead(s, h) { this.status = s; Object.assign(this.headers, h); },
              end() { this.ended = true; },
              getHeader(n) { return this.headers[n]; }, setHeader(n, v) { this.headers[n] = v; } };
const replayed = await http.ensurePrimary(res);
await http.setTxCookie(res);
console.log(JSON.stringify({ info, syncInfo, txnum, consistency, upToDate,
                             cookie: litefs.getTxSetCookieHeader(txnum),
                             ensurePrimary: { replayed, status: res.status, flyReplay: res.headers["fly-replay"] ?? null },
                             setCookie: res.headers["Set-Cookie"] }));
