// The tally dashboard's machinery: the state in the URL, the admin token of the session,
// fetching insights, and drawing a panel (loading, empty and error states, a chart or heat
// cells, the data table, CSV export). The pages themselves are data, in pages.js.
//
// Every number comes from GET /v1/insights/{name}; a panel's data table shows that answer's
// rows as they are (each cell keeps its raw value in data-value, which the browser test
// compares with the JSON API), formatted for people.
'use strict';

const Tally = (() => {
  const FILTERS = ['env', 'os', 'app_version', 'plugin'];
  const ENVS = ['development', 'staging', 'production', 'test'];
  const PRESETS = [['1d', 'Today'], ['7d', '7 days'], ['28d', '28 days'], ['90d', '90 days'], ['365d', '1 year']];
  const TOKEN_KEY = 'tally-admin-token';
  const DAY_MS = 86400000;
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#65a30d', '#475569', '#ca8a04', '#4f46e5', '#0d9488'];
  const DURATIONS = new Set(['p50', 'p90', 'p99']);
  const DURATION_TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 144e5];
  const SHARES = new Set(['share', 'baseline_share', 'share_left']);
  const LABELS = {
    window_days: 'window', period_projects: 'all projects', projects_both: 'both', projects_a: 'with A',
    projects_b: 'with B', projects_total: 'all projects', plugin_a: 'plugin A', plugin_b: 'plugin B',
    baseline_share: 'baseline', difference: 'difference', app_version: 'app version', error_kind: 'error kind',
    runtime_major: 'runtime major', runtime_minor: 'runtime minor', runtime_version: 'runtime version',
    projects_newest: 'newest here', projects_left: 'left behind', projects_kept: 'newer', runtime_projects: 'on the runtime',
    share_left: 'share left behind',
  };

  // ---- formatting -----------------------------------------------------------------------
  const intFormat = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => intFormat.format(n);
  const fmtPct = (x) => (x * 100).toFixed(x >= 0.995 || x === 0 ? 0 : 1) + '%';
  function fmtDuration(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    if (ms < 3600000) return (ms / 60000).toFixed(1) + ' min';
    return (ms / 3600000).toFixed(1) + ' h';
  }
  function fmtChange(now, before) {
    if (before === null || before === undefined) return '—';
    if (!before) return now ? 'new' : '±0';
    const x = (now - before) / before;
    return (x > 0 ? '+' : x < 0 ? '−' : '±') + Math.abs(x * 100).toFixed(1) + '%';
  }
  function fmtCell(col, v) {
    if (v === null || v === undefined) return '—';
    if (DURATIONS.has(col.name)) return fmtDuration(v);
    if (SHARES.has(col.name)) return fmtPct(v);
    if (col.name === 'difference') return (v > 0 ? '+' : v < 0 ? '−' : '±') + Math.abs(v * 100).toFixed(1) + ' pp';
    if (col.name === 'lift') return v.toFixed(2) + '×';
    if (col.name === 'window_days') return v === 1 ? '1 day' : v + ' days';
    if (col.type === 'int') return fmtInt(v);
    if (col.type === 'float') return v.toFixed(2);
    if (v === '') return col.name === 'ci' ? '(not CI)' : '(none)';
    return String(v);
  }
  const label = (name) => LABELS[name] || name.replace(/_/g, ' ');

  // ---- DOM ------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c.nodeType ? c : String(c));
    return el;
  }

  // ---- state: everything is in the URL --------------------------------------------------
  function readState() {
    const url = new URL(location.href);
    const pub = url.pathname.match(/^\/(public|collect)\/([^/]+)\/?$/);
    const q = url.searchParams;
    const custom = q.get('from') && q.get('to');
    return {
      page: pub ? '/' + pub[1] : url.pathname,
      public: !!pub,
      app: pub ? decodeURIComponent(pub[2]) : q.get('app') || '',
      since: custom ? '' : q.get('since') || '28d',
      from: custom ? q.get('from') : '',
      to: custom ? q.get('to') : '',
      compare: q.get('compare') === '1',
      filters: Object.fromEntries(FILTERS.map((f) => [f, pub ? '' : q.get(f) || ''])),
      q,
    };
  }
  let state = readState();

  // Changes the URL (one history entry per change, so Back undoes it) and redraws.
  function update(changes, replace) {
    const url = new URL(location.href);
    for (const [k, v] of Object.entries(changes)) {
      if (v === '' || v === null || v === undefined || v === false) url.searchParams.delete(k);
      else url.searchParams.set(k, v === true ? '1' : v);
    }
    history[replace ? 'replaceState' : 'pushState'](null, '', url);
    state = readState();
    if (!replace) render();
  }

  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  const dayMs = (iso) => Date.parse(iso + 'T00:00:00Z');
  // The range in whole UTC days, [start, end), as the API counts `since` (today included).
  function range() {
    if (state.from) return { start: dayMs(state.from), end: dayMs(state.to) };
    const end = (Math.floor(Date.now() / DAY_MS) + 1) * DAY_MS;
    const m = state.since.match(/^(\d+)([dw])$/);
    const days = m ? Number(m[1]) * (m[2] === 'w' ? 7 : 1) : 28;
    return { start: end - days * DAY_MS, end };
  }
  function rangeParams(shift) {
    if (!shift && !state.from) return { since: state.since };
    const { start, end } = range();
    const len = end - start;
    return { from: isoDay(start - (shift ? len : 0)), to: isoDay(end - (shift ? len : 0)) };
  }
  function baseParams() {
    const p = { app: state.app, ...rangeParams(false) };
    for (const f of FILTERS) if (state.filters[f]) p[f] = state.filters[f];
    if (state.public) p.public = 'true';
    return p;
  }

  // ---- the API --------------------------------------------------------------------------
  class AuthError extends Error {}
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
  let cache = new Map();
  function insightUrl(name, params) {
    return '/v1/insights/' + encodeURIComponent(name) + '?' + new URLSearchParams(params);
  }
  // The collector runs a few public queries at once and answers 503 with Retry-After
  // beyond that (docs/limits.md): the page keeps at most MAX_IN_FLIGHT requests open and
  // retries a busy answer after the delay it names, as every client should.
  const MAX_IN_FLIGHT = 3;
  const RETRIES = 6;
  let inFlight = 0;
  const waiting = [];
  async function slot(job) {
    if (inFlight >= MAX_IN_FLIGHT) await new Promise((resolve) => waiting.push(resolve));
    inFlight += 1;
    try {
      return await job();
    } finally {
      inFlight -= 1;
      const next = waiting.shift();
      if (next) next();
    }
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function fetchWithRetry(url, headers) {
    for (let attempt = 0; ; attempt++) {
      const r = await slot(() => fetch(url, { headers }));
      if ((r.status !== 503 && r.status !== 429) || attempt >= RETRIES) return r;
      const after = Number(r.headers.get('Retry-After'));
      await sleep(1000 * (Number.isFinite(after) && after > 0 ? Math.min(after, 10) : 1));
    }
  }
  function fetchUrl(url) {
    if (!cache.has(url)) {
      const headers = state.public ? {} : { Authorization: 'Bearer ' + token() };
      cache.set(url, fetchWithRetry(url, headers).then(async (r) => {
        const body = await r.json().catch(() => null);
        if (r.status === 401) throw new AuthError('The collector refused this admin token.');
        if (!r.ok) throw new Error((body && body.message) || 'the collector answered ' + r.status);
        return body;
      }));
      cache.get(url).catch(() => cache.delete(url));
    }
    return cache.get(url);
  }
  const insight = (name, params) => fetchUrl(insightUrl(name, params));

  // ---- tables, charts, CSV --------------------------------------------------------------
  const colIndex = (table, name) => table.columns.findIndex((c) => c.name === name);

  // The answer as a table; `bar` names the column drawn as a bar; `extra` adds derived
  // columns ({name, type, values}) that are not in the API's answer (data-derived).
  function dataTable(answer, src, opts) {
    const { columns, rows } = answer.table;
    const extra = opts.extra || [];
    const bar = opts.bar ? colIndex(answer.table, opts.bar) : -1;
    const max = bar >= 0 ? Math.max(1, ...rows.map((r) => r[bar] || 0)) : 1;
    const head = h('tr', null,
      columns.map((c) => h('th', { scope: 'col', class: c.type === 'text' || c.type === 'date' ? null : 'num', 'data-column': c.name }, label(c.name))),
      extra.map((c) => h('th', { scope: 'col', class: 'num', 'data-derived': true }, c.label)));
    const body = rows.map((row, i) => h('tr', null,
      row.map((v, j) => {
        const col = columns[j];
        const td = h('td', { 'data-value': v === null ? '' : String(v), class: col.type === 'text' || col.type === 'date' ? null : 'num' });
        if (j === bar) {
          td.classList.add('bar');
          td.style.setProperty('--w', ((v || 0) / max * 100).toFixed(1) + '%');
        }
        td.append(fmtCell(col, v));
        return td;
      }),
      extra.map((c) => h('td', { class: 'num', 'data-derived': true }, c.values[i]))));
    return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': opts.title + ' (data)' },
      h('table', { class: 'data', 'data-src': src }, h('thead', null, head), h('tbody', null, body)));
  }

  function toCsv(table) {
    const esc = (v) => {
      const s = v === null || v === undefined ? '' : String(v);
      return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [table.columns.map((c) => esc(c.name)).join(','), ...table.rows.map((r) => r.map(esc).join(','))].join('\n') + '\n';
  }
  function csvName(name) {
    const parts = [name, state.app, state.from ? state.from + '_' + state.to : state.since];
    for (const f of FILTERS) if (state.filters[f]) parts.push(f + '-' + state.filters[f]);
    return parts.join('_').replace(/[^A-Za-z0-9._-]+/g, '-') + '.csv';
  }
  function download(name, text) {
    const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  const charts = [];
  // A time series: `x` a date column; either `series` (columns drawn as they are) or `pivot`
  // ({key, value, top}: one line per key, the `top` keys with the most `value` in total).
  // `bands`: [upper, lower, fill] triples of `series` columns, the area between them filled
  // (percentiles: the spread reads at a glance, the lines alone do not).
  function lineChart(table, opts) {
    const xi = colIndex(table, opts.x);
    // `opts.days`: x is a whole number of days (e.g. since a release), not a date.
    // `opts.category`: x is a label (an app version), drawn at 0, 1, ... in the reverse of the
    // rows' order: answers list versions newest first, a chart reads oldest to newest.
    const xs = opts.category ? [...new Set(table.rows.map((r) => r[xi]))].reverse()
      : [...new Set(table.rows.map((r) => r[xi]))].sort(opts.days ? (a, b) => a - b : undefined);
    const xlabel = opts.category ? (i) => (xs[i] === undefined ? '' : xs[i] === '' ? '(none)' : String(xs[i])) : opts.days;
    let series;
    if (opts.pivot) {
      const ki = colIndex(table, opts.pivot.key);
      const vi = colIndex(table, opts.pivot.value);
      const totals = new Map();
      for (const r of table.rows) totals.set(r[ki], (totals.get(r[ki]) || 0) + (r[vi] || 0));
      const keys = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a)).slice(0, opts.pivot.top || 8);
      series = keys.map((k) => {
        const byX = new Map(table.rows.filter((r) => r[ki] === k).map((r) => [r[xi], r[vi]]));
        return { label: k === '' ? '(none)' : k, values: xs.map((x) => (byX.has(x) ? byX.get(x) : null)), col: table.columns[vi] };
      }).map((s, i) => ({ ...s, color: COLORS[i % COLORS.length] }));
    } else {
      // With the previous period, each series gets a dashed twin shifted onto this one.
      const shifted = (d) => isoDay(dayMs(d) + opts.shift);
      series = opts.series.flatMap((name, n) => {
        const i = colIndex(table, name);
        const now = new Map(table.rows.map((r) => [r[xi], r[i]]));
        const out = [{ label: label(name), values: xs.map((x) => (now.has(x) ? now.get(x) : null)), col: table.columns[i], color: COLORS[n] }];
        if (opts.prev) {
          const before = new Map(opts.prev.rows.map((r) => [shifted(r[xi]), r[i]]));
          out.push({ label: label(name) + ', previous period', values: xs.map((x) => (before.has(x) ? before.get(x) : null)), col: table.columns[i], color: COLORS[n], dash: [6, 4] });
        }
        return out;
      });
    }
    const el = h('div', { class: 'chart', role: 'img', 'aria-label': opts.title + ': chart; the table next to it has the numbers' });
    const fmt = (v) => (v === null || v === undefined ? '—' : fmtCell(series[0].col, v));
    const xsec = opts.category ? xs.map((x, i) => i) : opts.days ? xs : xs.map((x) => dayMs(x) / 1000);
    // uPlot's bands name series by index: 1 + the position of the column's own (undashed) line.
    const seriesOf = (name) => 1 + series.findIndex((s) => s.col.name === name && !s.dash);
    const bands = (opts.bands || []).map(([upper, lower, fill]) => ({ series: [seriesOf(upper), seriesOf(lower)], fill }));
    const make = () => new uPlot({
      width: Math.max(280, el.clientWidth || 560), height: 240,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      legend: { live: true },
      series: [{ label: opts.category ? label(opts.x) : undefined, value: (u, v) => (v === null ? '—' : xlabel ? xlabel(v) : isoDay(v * 1000)) },
        // A band's upper edge is a thin line: the fill below it carries the reading.
        ...series.map((s, i) => ({ label: s.label, stroke: s.color, dash: s.dash, width: s.dash || bands.some((b) => b.series[0] === i + 1) ? 1.5 : 2, spanGaps: false, value: (u, v) => fmt(v) }))],
      bands,
      // Ticks at round durations (10 s, 1 min, ...), printed without a trailing ".0".
      axes: [xlabel ? { values: (u, vals) => vals.map((v) => xlabel(v)), splits: opts.category ? () => xsec : undefined } : {},
        { size: 64, values: (u, vals) => vals.map((v) => fmt(v).replace(/\.0(?=\D*$)/, '')), incrs: DURATIONS.has(series[0].col.name) ? DURATION_TICKS : undefined }],
      // The x axis spans the asked range, however few days have data; categories get half a
      // step of room on each side.
      scales: { x: opts.category ? { time: false, range: () => [-0.5, xsec.length - 0.5] } : opts.days ? { time: false }
        : { time: true, range: opts.span ? () => [Math.min(opts.span[0], xsec[0]), Math.max(opts.span[1], xsec[xsec.length - 1])] : undefined } },
    }, [xsec, ...series.map((s) => s.values)], el);
    requestAnimationFrame(() => {
      const plot = make();
      // What uPlot was given, for the browser test: "upper>lower" series labels per band.
      el.dataset.bands = plot.bands.map((b) => plot.series[b.series[0]].label + '>' + plot.series[b.series[1]].label).join(' ');
      charts.push({ el, plot });
    });
    return el;
  }
  window.addEventListener('resize', () => {
    for (const c of charts) if (c.el.isConnected) c.plot.setSize({ width: Math.max(280, c.el.clientWidth), height: 240 });
  });

  // Heat cells: rows × columns of one value, shaded by value / the largest.
  function heatTable(table, opts) {
    const ri = colIndex(table, opts.rows);
    const ci = colIndex(table, opts.cols);
    const vi = colIndex(table, opts.value);
    // A square matrix (plugins × plugins) answers each pair once; it is drawn with every
    // label on both axes, in the order they first appear, and each pair in both cells.
    const rowKeys = [...new Set(table.rows.flatMap((r) => (opts.square ? [r[ri], r[ci]] : [r[ri]])))];
    const present = opts.square ? rowKeys : [...new Set(table.rows.map((r) => r[ci]))];
    const order = opts.colOrder || present;
    const colKeys = [...new Set(order)].filter((k) => present.includes(k));
    const cells = new Map(table.rows.flatMap((r) => [[r[ri] + '\u0000' + r[ci], r], ...(opts.square ? [[r[ci] + '\u0000' + r[ri], r]] : [])]));
    const values = table.rows.map((r) => (opts.shade ? opts.shade(r, table) : r[vi]) || 0);
    const max = Math.max(1e-9, ...values);
    const col = table.columns[vi];
    const fmtKey = (k) => (k === '' ? '(none)' : String(k));
    return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': opts.title + ' (matrix)' },
      h('table', { class: 'matrix' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, label(opts.rows) + ' \\ ' + label(opts.cols)), colKeys.map((k) => h('th', { scope: 'col', class: 'num' }, opts.colLabel ? opts.colLabel(k) : fmtKey(k))))),
        h('tbody', null, rowKeys.map((rk) => h('tr', null, h('th', { scope: 'row' }, fmtKey(rk)), colKeys.map((ck) => {
          const r = cells.get(rk + '\u0000' + ck);
          if (!r) return h('td', { class: 'num empty' }, '');
          const shade = (opts.shade ? opts.shade(r, table) : r[vi]) || 0;
          const td = h('td', { class: 'num heat' }, opts.text ? opts.text(r, table) : fmtCell(col, r[vi]));
          td.style.setProperty('--v', Math.min(1, shade / max).toFixed(3));
          return td;
        }))))));
  }

  // ---- panels ---------------------------------------------------------------------------
  const hidden = { rows: 0, k: null };

  function optionControl(panel, opt) {
    // A free-text option (a baseline distribution): applied on change, empty is none.
    if (opt.text) {
      return h('label', { class: 'opt' }, opt.label + ' ',
        h('input', { type: 'text', name: opt.key, 'data-option': opt.key, value: state.q.get(opt.key) || '', placeholder: opt.placeholder, size: 18,
          onchange: (e) => update({ [opt.key]: e.target.value.trim() }) }));
    }
    const value = state.q.get(opt.key) || opt.values[0][0];
    return h('label', { class: 'opt' }, opt.label + ' ',
      h('select', { name: opt.key, 'data-option': opt.key, onchange: (e) => update({ [opt.key]: e.target.value === opt.values[0][0] ? '' : e.target.value }) },
        opt.values.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
  }
  const optionValue = (opt) => state.q.get(opt.key) || (opt.text ? '' : opt.values[0][0]);

  // A panel: one insight (plus, for some, the previous period), drawn by `spec.draw` or
  // by the default: chart (if any) and data table.
  function panel(spec) {
    const options = spec.options || [];
    const opts = Object.fromEntries(options.map((o) => [o.param || o.key, optionValue(o)]).filter(([, v]) => v !== ''));
    // `params` may be a function of the page's parameters (e.g. to ask a longer range).
    const params = typeof spec.params === 'function' ? { ...spec.params(baseParams()), ...opts } : { ...baseParams(), ...(spec.params || {}), ...opts };
    const src = insightUrl(spec.insight, params);
    const csv = h('button', { type: 'button', class: 'csv', disabled: true, 'aria-label': 'Download ' + spec.title + ' as CSV' }, 'CSV');
    const body = h('div', { class: 'body' }, h('p', { class: 'status', role: 'status' }, 'Loading…'));
    const note = h('p', { class: 'note' });
    const section = h('section', { class: 'panel' + (spec.wide ? ' wide' : ''), id: 'panel-' + spec.id, 'data-insight': spec.insight, 'data-state': 'loading', 'aria-busy': 'true' },
      h('header', null, h('div', null, h('h2', null, spec.title), spec.question ? h('p', { class: 'question' }, spec.question) : null),
        h('div', { class: 'tools' }, options.map((o) => optionControl(spec, o)), csv)),
      body, note);
    const done = (st) => { section.dataset.state = st; section.removeAttribute('aria-busy'); };
    const previous = spec.previous && (spec.previous === 'always' || state.compare)
      ? Promise.all(spec.previousParams(params, range()).map((p) => insight(spec.insight, p))) : Promise.resolve(null);
    // Other insights a panel combines with its own (`also`: [name, params] pairs).
    const also = Promise.all((spec.also ? spec.also(params) : []).map(([name, p]) => insight(name, p)));
    Promise.all([fetchUrl(src), previous, also]).then(([answer, prev, others]) => {
      csv.disabled = false;
      csv.addEventListener('click', () => download(csvName(spec.insight), toCsv(answer.table)));
      const sup = answer.suppression;
      if (sup) {
        hidden.rows += sup.hidden_rows;
        hidden.k = sup.k;
        note.textContent = sup.hidden_rows
          ? `${fmtInt(sup.hidden_rows)} row${sup.hidden_rows === 1 ? '' : 's'} hidden: fewer than ${sup.k} projects`
          : `No row hidden (each has at least ${sup.k} projects)`;
        note.dataset.hiddenRows = sup.hidden_rows;
        summary();
      }
      body.replaceChildren();
      if (spec.empty ? spec.empty(answer.table) : !answer.table.rows.length) {
        body.append(h('p', { class: 'status empty' }, state.public ? 'Nothing to show: no row has enough projects to be published.' : 'No data for this range and these filters.'));
        return done('empty');
      }
      const extra = [...(prev ? spec.compareColumns(answer, prev) : []), ...(spec.derived ? spec.derived(answer, others) : [])];
      const { start, end } = range();
      const span = [start / 1000, (end - DAY_MS) / 1000];
      const parts = spec.draw ? spec.draw(answer, { title: spec.title, prev, others, shift: end - start, span }) : [];
      body.append(...[].concat(parts), dataTable(answer, src, { bar: spec.bar, title: spec.title, extra }));
      done('ready');
    }).catch((e) => {
      if (e instanceof AuthError) return document.querySelector('form.signin') || signIn(e.message);
      body.replaceChildren(h('p', { class: 'status error', role: 'alert' }, 'Could not load: ' + e.message + ' '),
        h('button', { type: 'button', onclick: () => { cache.delete(src); render(); } }, 'Retry'));
      done('error');
    });
    return section;
  }

  // With the comparison on, a panel also asks its insight over the previous period.
  const comparePeriod = (compareColumns) => ({
    previous: true,
    previousParams: (params) => [{ ...params, ...rangeParams(true) }],
    compareColumns: compareColumns || (() => []),
  });

  // Compares the rows of an answer with the previous period's, by key column.
  function compareByKey(key, value) {
    return comparePeriod((answer, [prev]) => {
      const ki = colIndex(answer.table, key);
      const vi = colIndex(answer.table, value);
      const before = new Map(prev.table.rows.map((r) => [r[ki], r[vi]]));
      return [
        { label: label(value) + ', previous period', values: answer.table.rows.map((r) => (before.has(r[ki]) ? fmtInt(before.get(r[ki])) : '—')) },
        { label: 'change', values: answer.table.rows.map((r) => fmtChange(r[vi], before.get(r[ki]) || 0)) },
      ];
    });
  }

  function summary() {
    const el = document.getElementById('hidden-summary');
    if (el) {
      el.textContent = `Published answers only: ${fmtInt(hidden.rows)} row${hidden.rows === 1 ? '' : 's'} on this page hidden because fewer than ${hidden.k} projects stand behind them.`;
      el.dataset.hiddenRows = hidden.rows;
    }
  }

  // ---- controls and pages -----------------------------------------------------------------
  let apps = null;
  let pages = {};

  function filterSelect(name, values, labelText) {
    const current = state.filters[name];
    const all = [...new Set([...values, ...(current ? [current] : [])])];
    return h('label', null, labelText + ' ', h('select', { name, 'data-filter': name, onchange: (e) => update({ [name]: e.target.value }) },
      h('option', { value: '' }, 'all'), all.map((v) => h('option', { value: v, selected: v === current }, v === '' ? '(none)' : v))));
  }
  const column = (answer, name) => answer.table.rows.map((r) => r[colIndex(answer.table, name)]);

  function controls() {
    const form = document.getElementById('controls');
    form.onsubmit = (e) => e.preventDefault();
    const custom = !!state.from;
    const rangeSelect = h('select', { name: 'since', 'aria-label': 'Time range', onchange: (e) => {
      if (e.target.value === 'custom') {
        const { start, end } = range();
        update({ since: '', from: isoDay(start), to: isoDay(end) });
      } else update({ since: e.target.value === '28d' ? '' : e.target.value, from: '', to: '' });
    } }, PRESETS.map(([v, t]) => h('option', { value: v, selected: !custom && v === state.since }, t)), h('option', { value: 'custom', selected: custom }, 'Custom…'));
    const parts = [];
    if (!state.public) {
      parts.push(h('label', null, 'App ', h('select', { name: 'app', onchange: (e) => update({ app: e.target.value }) },
        (apps || [{ app: state.app }]).map((a) => h('option', { value: a.app, selected: a.app === state.app }, a.app)))));
    }
    parts.push(h('label', null, 'Range ', rangeSelect));
    if (custom) {
      parts.push(h('label', null, 'from ', h('input', { type: 'date', name: 'from', value: state.from, onchange: (e) => update({ from: e.target.value }) })),
        h('label', null, 'until (excluded) ', h('input', { type: 'date', name: 'to', value: state.to, onchange: (e) => update({ to: e.target.value }) })));
    }
    if (!state.public) {
      parts.push(h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'compare', checked: state.compare, onchange: (e) => update({ compare: e.target.checked }) }), ' compare with the previous period'));
      const values = h('span', { class: 'filters' }, filterSelect('env', ENVS, 'Env'));
      parts.push(values);
      const p = { app: state.app, ...rangeParams(false) };
      Promise.all([insight('os-split', p), insight('app-versions', p), insight('top-plugins', { ...p, limit: 50 })]).then(([os, versions, plugins]) => {
        values.append(filterSelect('os', column(os, 'os'), 'OS'), filterSelect('app_version', column(versions, 'app_version'), 'Version'), filterSelect('plugin', column(plugins, 'plugin'), 'Plugin'));
      }).catch(() => {});
      if (FILTERS.some((f) => state.filters[f])) {
        parts.push(h('button', { type: 'button', onclick: () => update(Object.fromEntries(FILTERS.map((f) => [f, '']))) }, 'Clear filters'));
      }
    }
    form.replaceChildren(...parts);
  }

  function nav() {
    const el = document.getElementById('nav');
    if (state.public) {
      const app = encodeURIComponent(state.app);
      el.replaceChildren(
        h('a', { href: '/public/' + app, 'aria-current': state.page === '/public' ? 'page' : null }, 'Public analytics of ' + state.app),
        h('a', { href: '/collect/' + app, 'aria-current': state.page === '/collect' ? 'page' : null }, 'What ' + state.app + ' collects'));
      return;
    }
    // Links keep the app, the range and the filters; page options stay with their page.
    const keep = new URLSearchParams();
    for (const k of ['app', 'since', 'from', 'to', 'compare', ...FILTERS]) if (state.q.get(k)) keep.set(k, state.q.get(k));
    el.replaceChildren(...Object.entries(pages).filter(([p]) => p !== '/public' && p !== '/collect').map(([path, page]) =>
      h('a', { href: path + (keep.toString() ? '?' + keep : ''), 'aria-current': path === state.page ? 'page' : null }, page.title)));
  }

  function signIn(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('controls').replaceChildren();
    const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'off', required: true });
    const form = h('form', { class: 'signin', onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      cache = new Map();
      render();
    } },
    h('h1', null, 'Sign in'),
    h('p', null, 'The private dashboard needs the collector\'s admin token (the file admin-token in its data dir). It is kept for this browser tab only.'),
    message ? h('p', { class: 'status error', role: 'alert' }, message) : null,
    h('label', { for: 'token' }, 'Admin token'), input, h('button', { type: 'submit' }, 'Open the dashboard'),
    h('p', null, 'Or see what anyone can: ', h('a', { href: '/public/' + encodeURIComponent(state.app || 'demo') }, 'the public page')));
    document.getElementById('main').replaceChildren(form);
    input.focus();
  }

  function render() {
    state = readState();
    cache = new Map();
    hidden.rows = 0;
    charts.length = 0;
    const page = pages[state.page];
    const main = document.getElementById('main');
    nav();
    if (!page) {
      document.getElementById('controls').replaceChildren();
      main.replaceChildren(h('p', { class: 'status error' }, 'No page here. ', h('a', { href: '/' }, 'Go to the overview')));
      return;
    }
    if (!state.public && !token()) return signIn('');
    if (page.render) {
      // A page that is not a grid of insight panels (what an app collects).
      document.title = page.title + ' · ' + state.app + ' · tally';
      document.getElementById('controls').replaceChildren();
      main.replaceChildren(h('p', { class: 'status', 'aria-busy': 'true' }, 'Loading…'));
      page.render(state.app).then((nodes) => main.replaceChildren(...nodes), (e) => main.replaceChildren(h('p', { class: 'status error', role: 'alert' }, e.message)));
      return;
    }
    document.title = page.title + ' · ' + state.app + ' · tally';
    controls();
    const head = h('div', { class: 'page-head' }, h('h1', null, state.public ? state.app + ': public analytics' : page.title), page.intro ? h('p', null, page.intro) : null);
    if (state.public) head.append(h('p', { id: 'hidden-summary', class: 'note', 'data-hidden-rows': '0' }, 'Published answers only.'));
    main.replaceChildren(head, h('div', { class: 'grid' }, page.panels.map(panel)));
  }

  async function start(definitions) {
    pages = definitions;
    // A way in without copying the token: `tally serve` may print a link whose fragment
    // holds it (a fragment is never sent to a server); it moves to sessionStorage at once.
    const m = location.hash.match(/^#token=(.+)$/);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    window.addEventListener('popstate', render);
    try {
      apps = await fetch('/v1/apps').then((r) => r.json());
    } catch {
      apps = null;
    }
    if (!state.public && !state.app && apps && apps.length) update({ app: (apps.find((a) => a.app === 'demo') || apps[0]).app }, true);
    render();
  }

  return { start, fetchJson: fetchUrl, comparePeriod, compareByKey, lineChart, heatTable, fmtInt, fmtPct, fmtDuration, fmtChange, fmtCell, colIndex, h, isoDay, dayMs, DAY_MS, ENVS };
})();
