// Headless Chromium signs the guestbook N times through a replica's proxy and
// checks, each time, that the page it lands on shows its own message.
// Usage: node browser_read_your_writes.js URL N SCREENSHOT
// Prints one JSON line: {"submitted": n, "misses": n, "first_miss": ...}.
const { chromium } = require("playwright-core");

async function main() {
  const [url, count, screenshot] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(url);
  let misses = 0, firstMiss = null;
  for (let i = 0; i < count; i++) {
    const text = `browser message ${i} ${Date.now()}`;
    await page.fill("#text", text);
    await Promise.all([page.waitForNavigation(), page.click("#send")]);
    const newest = await page.textContent("#messages li:first-child").catch(() => null);
    if (newest !== text) {
      misses++;
      if (firstMiss === null) firstMiss = { i, want: text, got: newest };
    }
  }
  const cookies = await page.context().cookies();
  await page.screenshot({ path: screenshot });
  await browser.close();
  console.log(JSON.stringify({ submitted: count, misses, first_miss: firstMiss,
                               cookie: cookies.map((c) => c.name).sort() }));
}

main().catch((e) => { console.error(e); process.exit(1); });
