// Opens a node's status page in headless Chromium, waits until it shows
// database DB at TXID WANT, prints "shown", then (with LATER) waits until the
// page, refreshing itself, shows TXID LATER; saves a screenshot and prints
// what it shows as JSON.
// Usage: node status_page_check.js URL DB WANT_TXID SCREENSHOT [LATER_TXID]
const { chromium } = require("playwright-core");

async function main() {
  const [url, db, want, shot, later] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(url);
  const showsTxid = (txid) => page.waitForFunction(([db, want]) => {
    const row = [...document.querySelectorAll("#dbs tr")].find((tr) => tr.cells[0]?.textContent === db);
    return row && row.cells[1].textContent === want;
  }, [db, txid], { timeout: 15000 });
  await showsTxid(want);
  console.log("shown");
  if (later) await showsTxid(later);  // committed by the test after it read "shown"
  await page.screenshot({ path: shot });
  const shown = await page.evaluate(() => ({
    role: document.getElementById("role").textContent,
    primary: document.getElementById("primary").textContent,
    lag: document.getElementById("lag").textContent,
    dbs: [...document.querySelectorAll("#dbs tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
    replicas: [...document.querySelectorAll("#replicas tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
  }));
  await browser.close();
  const external = requests.filter((u) => !u.startsWith(new URL(url).origin));
  console.log(JSON.stringify({ ...shown, external }));
}

main().catch((e) => { console.error(e); process.exit(1); });
