// Drives Debian's chromium with playwright-core through the dashboard of a running
// collector, for tests/dashboard.rs. Reads TALLY_URL, TALLY_TOKEN, TALLY_APP, TALLY_NOW (the
// collector's fixed clock, which the pages' clock is fixed to as well), TALLY_SCREENSHOTS,
// TALLY_PROFILE (a fresh profile dir) and TALLY_DASHBOARD_NODE_MODULES.
//
// For every page, every data table must hold exactly the rows of the JSON answer it names
// (data-src), fetched again here, and axe-core must find no serious accessibility issue. What the test asserts beyond that (the expected numbers,
// what the public page hides) it reads from the JSON report printed on the last line.
'use strict';

const path = require('path');
const fs = require('fs');
const { chromium } = require(path.join(process.env.TALLY_DASHBOARD_NODE_MODULES, 'playwright-core'));

const base = process.env.TALLY_URL;
const token = process.env.TALLY_TOKEN;
const app = process.env.TALLY_APP;
const shots = process.env.TALLY_SCREENSHOTS;
const PAGES = ['/', '/plugins', '/errors', '/runtimes', '/setup-time', '/releases', '/retention'];
const report = { pages: {}, consoleErrors: [], axe: {} };

function fail(message) {
  throw new Error(message);
}

// Waits until no panel is loading; returns the state of each.
async function settled(page) {
  await page.waitForFunction(() => document.querySelector('#main .grid') && !document.querySelector('.panel[data-state="loading"]'), null, { timeout: 20000 });
  await page.waitForTimeout(150); // charts draw on the next animation frame
  return page.$$eval('.panel', (ps) => ps.map((p) => ({ id: p.id, insight: p.dataset.insight, state: p.dataset.state, text: p.querySelector('.status') ? p.querySelector('.status').textContent : '' })));
}

// Every data table's columns and raw cells, with the answer its data-src gives. The answers
// are fetched one at a time, and a `busy` answer (429: the public page's concurrency limit,
// which a page's own panel loads may still be holding) is retried after its Retry-After, as
// the dashboard itself does: the check compares answers, not the limit.
async function tables(page) {
  return page.$$eval('table.data', async (ts) => {
    const out = [];
    for (const t of ts) {
      const src = t.dataset.src;
      const saved = sessionStorage.getItem('tally-admin-token');
      let r;
      for (let attempt = 0; ; attempt++) {
        r = await fetch(src, { headers: saved ? { Authorization: 'Bearer ' + saved } : {} });
        if (r.status !== 429 || attempt === 10) break;
        await new Promise((ok) => setTimeout(ok, 1000 * Number(r.headers.get('retry-after') || 1)));
      }
      out.push({
      panel: t.closest('.panel').id,
      src,
      columns: [...t.querySelectorAll('thead th[data-column]')].map((th) => th.dataset.column),
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td:not([data-derived])')].map((td) => td.dataset.value)),
      text: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
      derived: t.querySelectorAll('thead th[data-derived]').length,
      answer: await r.json(),
      });
    }
    return out;
  });
}

// axe-core's serious and critical findings. Evaluated through the DevTools protocol, which
// the page's Content-Security-Policy does not apply to (a script tag would be refused).
const axeSource = fs.readFileSync(path.join(process.env.TALLY_DASHBOARD_NODE_MODULES, 'axe-core/axe.min.js'), 'utf8');
async function accessibility(page) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
}

function sameAsApi(t) {
  const want = t.answer.table;
  if (!want) fail(`${t.panel}: ${t.src} answers ${JSON.stringify(t.answer)}`);
  const cols = want.columns.map((c) => c.name);
  if (JSON.stringify(cols) !== JSON.stringify(t.columns)) fail(`${t.panel}: columns ${t.columns} but the API answers ${cols}`);
  const rows = want.rows.map((r) => r.map((v) => (v === null ? '' : String(v))));
  if (JSON.stringify(rows) !== JSON.stringify(t.rows)) fail(`${t.panel}: table ${JSON.stringify(t.rows)} but the API answers ${JSON.stringify(rows)}`);
}

// A page's panels, checked against the API, as {panel: {columns, rows, text, ...}}.
async function checkPage(page, url, name) {
  await page.goto(base + url);
  const panels = await settled(page);
  const broken = panels.filter((p) => p.state === 'error');
  if (broken.length) fail(`${url}: panels in error: ${JSON.stringify(broken)}`);
  const ts = await tables(page);
  ts.forEach(sameAsApi);
  if (name) {
    await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
    report.axe[url] = await accessibility(page);
  }
  // Each chart's bands as uPlot holds them ("upper>lower" series labels), by panel.
  const charts = await page.$$eval('.panel .chart', (cs) => cs.map((c) => [c.closest('.panel').id.replace(/^panel-/, ''), c.dataset.bands]));
  const out = { panels, charts: Object.fromEntries(charts) };
  for (const t of ts) out[t.panel.replace(/^panel-/, '')] = { columns: t.columns, rows: t.rows, text: t.text, derived: t.derived, suppression: t.answer.suppression || null, src: t.src };
  return out;
}

(async () => {
  const browser = await chromium.launchPersistentContext(process.env.TALLY_PROFILE, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // The pages compute ranges and the previous period from Date.now(): the collector's now.
  await browser.clock.setFixedTime(new Date(process.env.TALLY_NOW));
  const watch = (page, phase) => {
    page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push(`${phase}: ${m.text()}`); });
    page.on('pageerror', (e) => report.consoleErrors.push(`${phase}: ${e.message}`));
  };
  try {
    // Sign-in: no token, then a wrong one (its 401 is expected on the console), then the right one.
    const page = await browser.newPage();
    page.on('pageerror', (e) => report.consoleErrors.push(`sign-in: ${e.message}`));
    await page.goto(`${base}/?app=${app}&since=7d`);
    await page.waitForSelector('form.signin');
    report.signIn = { tablesWithoutToken: await page.locator('table.data').count() };
    report.axe['sign-in'] = await accessibility(page);
    await page.fill('#token', 'not-the-token');
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('form.signin [role=alert]');
    report.signIn.wrongToken = await page.textContent('form.signin [role=alert]');
    await page.fill('#token', token);
    await page.click('form.signin button[type=submit]');
    await settled(page);
    report.signIn.localStorage = await page.evaluate(() => localStorage.length);
    report.signIn.inUrl = page.url().includes(token);
    watch(page, 'private');

    for (const p of PAGES) report.pages[p] = await checkPage(page, `${p}?app=${app}&since=7d`, p === '/' ? 'overview' : p.slice(1));

    // A filter: env=production changes the URL and the tables (still equal to the API).
    await page.goto(`${base}/?app=${app}&since=7d`);
    await settled(page);
    await page.waitForSelector('select[data-filter=os]');
    await page.selectOption('select[data-filter=env]', 'production');
    await page.waitForURL(/env=production/);
    await settled(page);
    const filtered = await tables(page);
    filtered.forEach(sameAsApi);
    report.filter = { url: page.url(), env: filtered.find((t) => t.panel === 'panel-env').rows, srcs: filtered.map((t) => t.src) };
    // The URL round-trips the state: Back undoes the filter, the filtered URL restores it.
    await page.goBack();
    await settled(page);
    report.filter.back = { url: page.url(), select: await page.inputValue('select[data-filter=env]'), env: (await tables(page)).find((t) => t.panel === 'panel-env').rows };
    await page.goto(report.filter.url);
    await settled(page);
    report.filter.reloaded = { select: await page.inputValue('select[data-filter=env]'), env: (await tables(page)).find((t) => t.panel === 'panel-env').rows };

    // The comparison adds the previous period's numbers to the lists.
    report.compare = await checkPage(page, `/?app=${app}&since=7d&compare=1`);

    // The empty state (an app without data) and the error state (a range the API refuses;
    // its 400s are logged, so in a tab whose console is not watched).
    await page.goto(`${base}/?app=strapi&since=7d`);
    report.emptyApp = await settled(page);
    const bad = await browser.newPage();
    await bad.goto(`${base}/?app=${app}&since=7x`);
    await bad.waitForFunction(() => sessionStorage.length === 0 && document.querySelector('form.signin'));
    await bad.fill('#token', token);
    await bad.click('form.signin button[type=submit]');
    report.badRange = await settled(bad);
    await bad.close();

    // A panel option: group errors by app version.
    await page.goto(`${base}/errors?app=${app}&since=7d`);
    await settled(page);
    await page.selectOption('#panel-error-by select[data-option=by]', 'app_version');
    await page.waitForURL(/by=app_version/);
    await settled(page);
    const by = (await tables(page)).find((t) => t.panel === 'panel-error-by');
    sameAsApi(by);
    report.errorsByVersion = { url: page.url(), columns: by.columns, src: by.src };

    // CSV export of a panel is its table.
    await page.goto(`${base}/plugins?app=${app}&since=7d&env=production`);
    await settled(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#panel-top-plugins button.csv')]);
    const csv = fs.readFileSync(await download.path(), 'utf8');
    report.csv = { name: download.suggestedFilename(), text: csv, table: (await tables(page)).find((t) => t.panel === 'panel-top-plugins').rows };

    // Dropping a runtime version, by exact version; its CSV.
    await page.goto(`${base}/runtimes?app=${app}&since=7d`);
    await settled(page);
    await page.selectOption('#panel-drop-support select[data-option=runtime]', 'runtime_version');
    await page.waitForURL(/runtime=runtime_version/);
    await settled(page);
    const drop = (await tables(page)).find((t) => t.panel === 'panel-drop-support');
    sameAsApi(drop);
    const [dropCsv] = await Promise.all([page.waitForEvent('download'), page.click('#panel-drop-support button.csv')]);
    report.dropSupport = { url: page.url(), rows: drop.rows, csv: fs.readFileSync(await dropCsv.path(), 'utf8') };

    // Runtime versions against a baseline typed into the panel's option.
    await page.goto(`${base}/runtimes?app=${app}&since=7d`);
    await settled(page);
    const typed = page.locator('#panel-runtime-versions input[data-option=baseline]');
    await typed.fill('22:60,20:30,18:10');
    await typed.dispatchEvent('change');
    await page.waitForURL(/baseline=/);
    await settled(page);
    const against = (await tables(page)).find((t) => t.panel === 'panel-runtime-versions');
    sameAsApi(against);
    report.baseline = { url: page.url(), columns: against.columns, rows: against.rows, text: against.text, src: against.src };

    // The public page, in a tab without the token.
    const pub = await browser.newPage();
    watch(pub, 'public');
    report.public = await checkPage(pub, `/public/${app}?since=7d`, 'public');
    report.public.hiddenSummary = Number(await pub.getAttribute('#hidden-summary', 'data-hidden-rows'));
    report.public.summaryText = await pub.textContent('#hidden-summary');
    report.public.notes = await pub.$$eval('.panel .note[data-hidden-rows]', (ns) => ns.map((n) => Number(n.dataset.hiddenRows)));

    // What the app collects, in the same tab without the token (and its link from the public page).
    await pub.click(`nav a[href="/collect/${app}"]`);
    await pub.waitForSelector('#collect-events');
    const names = (attr) => pub.$$eval(`tr[data-${attr}]`, (rs, a) => rs.map((r) => r.dataset[a]), attr);
    report.collect = {
      url: pub.url(),
      events: await names('event'),
      props: await names('prop'),
      fields: await names('field'),
      whys: await pub.$$eval('table.collect td.why', (tds) => tds.map((td) => td.textContent)),
      panels: await pub.$$eval('tr[data-field="plugins"] td:last-child', (tds) => tds.map((td) => td.textContent)),
      example: JSON.parse(await pub.textContent('#collect-example')),
      consent: await pub.$$eval('#collect-consent li', (ls) => ls.map((l) => l.textContent)),
    };
    await pub.screenshot({ path: path.join(shots, 'collect.png'), fullPage: true });
    report.axe['/collect'] = await accessibility(pub);

    // The link `tally serve --demo` prints signs in with the token in the fragment, then drops it.
    const linked = await browser.newPage();
    watch(linked, 'link');
    await linked.goto(`${base}/?app=${app}&since=7d#token=${encodeURIComponent(token)}`);
    await settled(linked);
    report.tokenLink = { url: linked.url(), tables: await linked.locator('table.data').count() };

    // A private page in a new tab asks for the token again (it is kept per tab session).
    const fresh = await browser.newPage();
    await fresh.goto(`${base}/plugins?app=${app}`);
    await fresh.waitForSelector('form.signin');
    report.freshTab = { signIn: true, tables: await fresh.locator('table.data').count() };
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
