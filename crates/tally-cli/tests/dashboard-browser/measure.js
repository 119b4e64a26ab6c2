// Times the dashboard in Debian's chromium against a running collector, for
// tests/dashboard_bench.rs (`cargo xtask dashboard-bench`). Reads TALLY_URL, TALLY_TOKEN,
// TALLY_APP, TALLY_NOW (the collector's fixed clock), TALLY_RUNS, TALLY_SCREENSHOTS and
// TALLY_DASHBOARD_NODE_MODULES; prints one JSON report on its last line.
//
// Each load is cold: a new browser context (empty cache, no session), signed in with the
// token link. Per load: first contentful paint, the time until every panel is drawn, and
// per insight request the time from sending it to the first byte of the answer (the
// collector answers only once the whole table is computed, so this is the panel's data
// time on loopback) and to its last byte. Page weight: every asset the page loaded, as
// served and gzipped (-9).
'use strict';

const path = require('path');
const zlib = require('zlib');
const { chromium } = require(path.join(process.env.TALLY_DASHBOARD_NODE_MODULES, 'playwright-core'));

const base = process.env.TALLY_URL;
const token = process.env.TALLY_TOKEN;
const app = process.env.TALLY_APP;
const runs = Number(process.env.TALLY_RUNS || 3);
const PAGES = ['/', '/plugins', '/errors', '/runtimes', '/setup-time', '/releases', '/retention'];
const RANGES = ['28d', '90d'];

async function load(browser, url, shot) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The pages' "today" is the collector's: Date shifted to TALLY_NOW, time still flowing.
  // (Playwright's clock also fakes `performance`, whose timings this script reads.)
  await context.addInitScript((now) => {
    const Real = Date;
    const offset = now - Real.now();
    class Shifted extends Real {
      constructor(...args) {
        super(...(args.length ? args : [Real.now() + offset]));
      }
      static now() {
        return Real.now() + offset;
      }
    }
    globalThis.Date = Shifted;
  }, Date.parse(process.env.TALLY_NOW));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('#main .grid') && !document.querySelector('.panel[data-state="loading"]'), null, { timeout: 120000, polling: 10 });
  const result = await page.evaluate(() => {
    const paint = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
    const resources = performance.getEntriesByType('resource');
    return {
      complete: performance.now(),
      fcp: paint ? paint.startTime : null,
      states: [...document.querySelectorAll('.panel')].map((p) => p.dataset.state),
      insights: resources.filter((r) => r.name.includes('/v1/insights/')).map((r) => ({
        url: r.name.slice(r.name.indexOf('/v1/insights/') + 13),
        firstByte: r.responseStart - r.requestStart,
        total: r.responseEnd - r.startTime,
      })),
      assets: resources.filter((r) => !r.name.includes('/v1/')).map((r) => r.name),
    };
  });
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  await context.close();
  return { ...result, errors };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const report = { pages: [], insights: {}, weight: null, errors: [] };
  const assets = new Set();
  try {
    // One untimed load first: the collector's first answers warm its caches and the OS's.
    await load(browser, `${base}/?app=${app}&since=28d#token=${encodeURIComponent(token)}`);
    for (const since of RANGES) {
      for (const p of [...PAGES, `/public/${app}`]) {
        const loads = [];
        for (let i = 0; i < runs; i++) {
          const publicPage = p.startsWith('/public/');
          const url = `${base}${p}?${publicPage ? '' : `app=${app}&`}since=${since}${publicPage ? '' : `#token=${encodeURIComponent(token)}`}`;
          const shot = i === 0 && since === '28d' && process.env.TALLY_SCREENSHOTS
            ? path.join(process.env.TALLY_SCREENSHOTS, (p === '/' ? 'overview' : p.slice(1).replace(/\//g, '-')) + '-10M.png') : null;
          const r = await load(browser, url, shot);
          r.assets.forEach((a) => assets.add(a));
          report.errors.push(...r.errors.map((e) => `${p}: ${e}`));
          if (r.states.some((s) => s !== 'ready' && s !== 'empty')) report.errors.push(`${p} ${since}: panel states ${r.states}`);
          loads.push(r);
          for (const q of r.insights) {
            const key = `${since} ${q.url}`;
            (report.insights[key] = report.insights[key] || { page: p, since, firstByte: [], total: [] });
            report.insights[key].firstByte.push(q.firstByte);
            report.insights[key].total.push(q.total);
          }
        }
        report.pages.push({
          page: p,
          since,
          panels: loads[0].states.length,
          fcp: median(loads.map((l) => l.fcp)),
          complete: median(loads.map((l) => l.complete)),
          slowestFirstByte: median(loads.map((l) => Math.max(0, ...l.insights.map((q) => q.firstByte)))),
        });
      }
    }
  } finally {
    await browser.close();
  }
  for (const v of Object.values(report.insights)) {
    v.firstByte = median(v.firstByte);
    v.total = median(v.total);
  }
  let raw = 0;
  let gz = 0;
  for (const a of assets) {
    const body = Buffer.from(await (await fetch(a)).arrayBuffer());
    raw += body.length;
    gz += zlib.gzipSync(body, { level: 9 }).length;
  }
  report.weight = { assets: [...assets].map((a) => new URL(a).pathname).sort(), raw, gzip: gz };
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
