// Browser test of the dashboard (tests/e2e/dashboard_test.cpp runs it against `apilake up --demo`):
// headless Chromium via playwright-core loads `/`, starts two extractions from the generated form
// (bcb_sgs.series, then openbrewerydb.breweries), waits for `succeeded` on the page, and checks that
// every insight with data has a chart with data points, the status panels show what the API says,
// and nothing went wrong in the page (console errors, page errors, failed or 4xx/5xx requests).
// Usage: node dashboard.mjs BASE_URL SCREENSHOT.png
// Prints one JSON summary line; exit 0 when every check passed, 1 with the failures otherwise.
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node dashboard.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const STEP_MS = 90_000;  // per wait: generous for 2 loaded cores, well inside the ctest TIMEOUT

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const summary = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (m) => { if (m.type() === "error") failures.push(`console error: ${m.text()}`); });
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => failures.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on("response", (r) => { if (r.status() >= 400) failures.push(`HTTP ${r.status()} for ${r.url()}`); });
  const requested = new Set();
  page.on("request", (r) => requested.add(new URL(r.url()).origin));

  await page.goto(`${base}/`, { waitUntil: "load" });
  check(await page.evaluate(() => typeof window.Chart === "function"), "Chart.js is not loaded");
  await page.waitForSelector("#source-select option", { state: "attached" });

  // Fills the generated form for one source.endpoint and follows the extraction to `succeeded`.
  async function extract(label, values) {
    await page.selectOption("#source-select", { label });
    for (const [name, value] of Object.entries(values)) await page.fill(`#param-${name}`, value);
    await page.click("#submit-button");
    // The page follows it until it failed, or succeeded with every fetched record curated or
    // dead-lettered (then it marks data-curated).
    await page.waitForFunction(() => {
      const f = document.querySelector("#follow");
      return f.dataset.status === "failed" || (f.dataset.status === "succeeded" && f.dataset.curated === "1");
    });
    const text = await page.textContent("#follow");
    check(/: succeeded — /.test(text), `${label}: the page shows "${text}", not succeeded`);
    return text;
  }

  // The form knows each param's type: series is an integer input, start/end are date inputs.
  await page.selectOption("#source-select", { label: "bcb_sgs.series" });
  summary.input_types = await page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#param-fields input, #param-fields select")].map((i) => [i.name, i.type])));
  check(summary.input_types.series === "number" && summary.input_types.start === "date", "param inputs are not typed");

  // A bad value is refused in the page, with the field named, before any request.
  await page.fill("#param-series", "");
  await page.click("#submit-button");
  const refused = await page.textContent("#follow");
  check(/series is required/.test(refused), `empty required param not refused: "${refused}"`);

  summary.bcb = await extract("bcb_sgs.series", { series: "11", start: "2024-01-01", end: "2024-01-31" });
  summary.brewery = await extract("openbrewerydb.breweries", { by_state: "ohio" });

  // Every insight over the two datasets is materialised after their batches (asynchronously: wait
  // for the API to list it with rows), and then gets a chart with points once the page has polled.
  const extracted = ["bcb_sgs_series", "openbrewerydb_breweries"];
  let listed, expected, withData;
  for (const until = Date.now() + STEP_MS; ;) {
    listed = (await (await page.request.get(`${base}/v1/insights`)).json()).insights;
    expected = listed.filter((i) => i.datasets.every((d) => extracted.includes(d))).map((i) => i.name);
    withData = listed.filter((i) => i.rows != null && i.rows > 0).map((i) => i.name);
    if (expected.every((n) => withData.includes(n)) || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  summary.insights_with_data = withData;
  check(expected.length >= 2 && expected.every((n) => withData.includes(n)),
        `insights without data after both extractions: ${expected.filter((n) => !withData.includes(n)).join(", ")}`);
  await page.waitForFunction((names) => names.every((n) => {
    const canvas = document.querySelector(`canvas[data-insight="${n}"]`);
    const chart = canvas && window.Chart.getChart(canvas);
    return chart && chart.data.datasets.length > 0 && chart.data.datasets.every((d) => d.data.length > 0);
  }), withData);
  summary.charts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("canvas[data-insight]")]
    .map((c) => [c.dataset.insight, window.Chart.getChart(c)?.data.datasets.map((d) => d.data.length) ?? []])));
  for (const n of withData)
    check((summary.charts[n] || []).length > 0 && summary.charts[n].every((len) => len > 0), `chart ${n} has no points`);

  // Status panels: the extractions listed with their final status, the lake and dead letters filled
  // in from the API (the brewery fixture plants one record without a name).
  await page.waitForFunction(() => document.querySelectorAll("#extraction-table tbody td.status-succeeded").length >= 2);
  await page.waitForFunction(() => [...document.querySelectorAll("#datasets tbody tr td:first-child")]
    .some((td) => td.textContent === "openbrewerydb_breweries"));
  await page.waitForFunction(() => [...document.querySelectorAll("#deadletter-table tbody tr td:first-child")]
    .some((td) => td.textContent === "openbrewerydb_breweries"));
  await page.waitForFunction(() => document.querySelectorAll("#backlog tbody tr").length >= 2);
  summary.curated_shown = await page.textContent("#stat-curated");
  check(Number(summary.curated_shown.replace(/,/g, "")) > 0, `records curated shown as ${summary.curated_shown}`);

  // Nothing from anywhere but the server itself.
  summary.origins = [...requested];
  check(summary.origins.every((o) => o === new URL(base).origin), `requests left the server: ${summary.origins}`);

  await page.screenshot({ path: screenshot, fullPage: true });
  summary.screenshot = screenshot;
} catch (e) {
  failures.push(`exception: ${e.message}`);
} finally {
  await browser.close();
}
summary.failures = failures;
console.log(JSON.stringify(summary));
process.exit(failures.length ? 1 : 0);
