// The dashboard's pages as data: each page is a list of panels, each panel one insight of
// the catalog (GET /v1/insights) with how to draw it. dashboard.js does the rest.
'use strict';

(() => {
  const { fetchJson, comparePeriod, compareByKey, lineChart, heatTable, fmtInt, fmtPct, fmtChange, colIndex, h, isoDay, dayMs, DAY_MS, ENVS } = Tally;

  const byProjects = (key) => ({ bar: 'projects', ...compareByKey(key, 'projects') });
  const split = (id, insight, title, key, question) => ({ id, insight, title, question, ...byProjects(key) });
  const chart = (opts) => (answer, ctx) => lineChart(answer.table, { ...opts, title: ctx.title, prev: ctx.prev && ctx.prev[0].table, shift: ctx.shift, span: ctx.span });
  // Active counts have a row per window or day even without data: empty means no project.
  const noProjects = (t) => t.rows.every((r) => !r[colIndex(t, 'projects')]);
  const topOption = (values) => ({ key: 'top', param: 'limit', label: 'Top', values: values.map((n) => [String(n), String(n)]) });

  // Active projects and machines over 1, 7 and 28 days, each against the window before it
  // (the same insight asked to end where the window starts).
  const active = {
    id: 'active', insight: 'active', title: 'Active projects and machines', wide: true,
    question: 'Distinct projects and machines in the last 1, 7 and 28 days of the range, against the window before each.',
    previous: 'always',
    empty: noProjects,
    previousParams: (params, range) => [1, 7, 28].map((w) => {
      const p = { ...params, to: isoDay(range.end - w * DAY_MS) };
      delete p.since;
      delete p.from;
      return p;
    }),
    compareColumns: (answer, prev) => {
      const t = answer.table;
      const before = (row, col) => {
        const w = row[colIndex(t, 'window_days')];
        const p = prev[[1, 7, 28].indexOf(w)];
        const r = p && p.table.rows.find((x) => x[colIndex(p.table, 'window_days')] === w);
        return r ? r[colIndex(p.table, col)] : null;
      };
      return ['projects', 'machines'].flatMap((col) => [
        { label: col + ', window before', values: t.rows.map((r) => (before(r, col) === null ? '—' : fmtInt(before(r, col)))) },
        { label: col + ', change', values: t.rows.map((r) => fmtChange(r[colIndex(t, col)], before(r, col))) },
      ]);
    },
    draw: (answer, ctx) => {
      const t = answer.table;
      return h('div', { class: 'cards' }, t.rows.flatMap((r, i) => ['projects', 'machines'].map((col) => {
        const now = r[colIndex(t, col)];
        const p = ctx.prev[i];
        const pr = p && p.table.rows.find((x) => x[colIndex(p.table, 'window_days')] === r[colIndex(t, 'window_days')]);
        const before = pr ? pr[colIndex(p.table, col)] : null;
        const change = fmtChange(now, before);
        const w = r[colIndex(t, 'window_days')];
        const versus = before === null ? '' : before === 0 ? ` (none the ${w === 1 ? 'day' : w + ' days'} before)` : ` vs ${fmtInt(before)} the ${w === 1 ? 'day' : w + ' days'} before`;
        return h('div', { class: 'card' },
          h('div', { class: 'card-label' }, col === 'projects' ? 'Projects' : 'Machines', ', ', w === 1 ? 'last day' : `last ${w} days`),
          h('div', { class: 'card-value' }, fmtInt(now)),
          h('div', { class: 'card-change ' + (now > before ? 'up' : now < before ? 'down' : '') }, change, versus));
      })));
    },
  };

  const overview = {
    title: 'Overview',
    intro: 'Who is using the tool, where, and how much.',
    panels: [
      active,
      { id: 'events', insight: 'events-per-day', title: 'Events per day', wide: true, question: 'Events received each day (dashed: the previous period, with the comparison on).', ...comparePeriod(), draw: chart({ x: 'day', series: ['events'] }) },
      { id: 'active-trend', insight: 'active-trend', title: 'Active per day', question: 'Distinct projects and machines each day.', empty: noProjects, ...comparePeriod(), draw: chart({ x: 'day', series: ['projects', 'machines'] }) },
      split('env', 'env-split', 'Environments', 'env', 'Projects per environment (a project may run in several).'),
      split('os', 'os-split', 'Operating systems', 'os'),
      split('ci', 'ci-split', 'CI', 'ci', 'Projects per CI system; (not CI) is a developer machine or a server.'),
      split('arch', 'arch-split', 'CPU architectures', 'arch'),
    ],
  };

  const plugins = {
    title: 'Plugins',
    intro: 'Which plugins projects use, how that changes, and which go together.',
    panels: [
      { ...split('top-plugins', 'top-plugins', 'Top plugins', 'plugin', 'Plugins by number of projects.'), options: [topOption([20, 10, 50])] },
      { id: 'adoption', insight: 'plugin-adoption', title: 'Adoption over time', wide: true, question: 'Share of active projects using each top plugin, per week.', params: { limit: 8 }, draw: chart({ x: 'period', pivot: { key: 'plugin', value: 'share', top: 8 } }) },
      { id: 'co-usage', insight: 'co-usage', title: 'Used together', wide: true, params: { limit: 10 },
        question: 'Lift: how much more often two plugins share a project than chance predicts (1× = independent).',
        draw: (answer, ctx) => heatTable(answer.table, { title: ctx.title, rows: 'plugin_a', cols: 'plugin_b', value: 'lift', square: true }) },
      { id: 'feature-env', insight: 'feature-env', title: 'Plugins by environment', wide: true, params: { limit: 12 },
        question: 'Projects using each top plugin, per environment: is it used in production?',
        draw: (answer, ctx) => heatTable(answer.table, { title: ctx.title, rows: 'plugin', cols: 'env', value: 'projects', colOrder: ENVS }) },
    ],
  };

  const groupBy = { key: 'by', param: 'group_by', label: 'Split by', values: [['os', 'OS'], ['runtime_major', 'runtime'], ['app_version', 'app version'], ['env', 'environment'], ['ci', 'CI']] };
  const errors = {
    title: 'Errors',
    intro: 'Which errors affect the most projects, and where.',
    panels: [
      { id: 'error-kinds', insight: 'error-kinds', title: 'Top error kinds', question: 'Error kinds by affected projects; share of the active projects.', bar: 'projects', ...compareByKey('error_kind', 'projects') },
      { id: 'error-trend', insight: 'error-kinds', title: 'Trend', question: 'Projects affected by each error kind, per week.', params: { period: 'week' }, draw: chart({ x: 'period', pivot: { key: 'error_kind', value: 'projects', top: 8 } }) },
      { id: 'error-by', insight: 'error-kinds', title: 'Error kinds by OS, runtime or version', wide: true, options: [groupBy],
        question: 'Affected projects per error kind and OS, runtime or app version.',
        draw: (answer, ctx) => heatTable(answer.table, { title: ctx.title, rows: 'error_kind', cols: answer.table.columns[1].name, value: 'projects' }) },
    ],
  };

  // One granularity for the page's panels (the same URL key).
  const granularity = { key: 'runtime', param: 'group_by', label: 'Granularity', values: [['runtime_major', 'major'], ['runtime_minor', 'minor'], ['runtime_version', 'exact']] };
  // A distribution to compare the shares with, as the API takes it (`20:41,22:35,18:24`).
  const baseline = { key: 'baseline', label: 'Baseline', text: true, placeholder: '20:41,22:35,18:24' };
  const runtimes = {
    title: 'Runtimes',
    intro: 'Which runtime versions projects run, and what dropping one would cost.',
    panels: [
      { id: 'runtime-versions', insight: 'runtime-versions', title: 'Runtime versions', wide: true, bar: 'share',
        options: [granularity, baseline],
        question: 'Share of active projects per runtime version (a project may run several), against a baseline distribution if one is given (version:share, e.g. the runtime\'s download shares).' },
      { id: 'drop-support', insight: 'drop-support', title: 'Dropping a version', wide: true, bar: 'share_left',
        options: [granularity],
        question: 'If support for a version and every older one ends, who is left behind: the projects none of whose machines ran a newer version, as a share of the projects on that runtime.' },
    ],
  };

  // p50 a line, p50 to p90 shaded, p90 to p99 shaded lighter (in the p90 and p99 colours).
  const percentileBands = { series: ['p50', 'p90', 'p99'], bands: [['p90', 'p50', 'rgba(220, 38, 38, 0.18)'], ['p99', 'p90', 'rgba(22, 163, 74, 0.10)']] };
  const setupTime = {
    title: 'Setup time',
    intro: 'How long setup (dependency install at project creation) takes; is it getting slower?',
    panels: [
      { id: 'setup-week', insight: 'setup-time', title: 'Per week', wide: true, question: 'p50, p90 and p99 of the install time, per week (nearest rank; shaded: p50 to p90, lighter p90 to p99).', draw: chart({ x: 'period', ...percentileBands }) },
      { id: 'setup-version', insight: 'setup-time', title: 'Per app version', wide: true, bar: 'p90', params: { group_by: 'app_version' }, question: 'p50, p90 and p99 per version of the tool (shaded as above).', draw: chart({ x: 'app_version', category: true, ...percentileBands }) },
    ],
  };

  // A release is the first day a version is seen: asked over two years (with the filters),
  // whatever the range, so that a version released before the range keeps its day.
  const RELEASE_LOOKBACK = '730d';
  const sinceReleases = (params) => {
    const p = { ...params, since: RELEASE_LOOKBACK, period: 'day' };
    delete p.from;
    delete p.to;
    return p;
  };
  // Rows of app-version-adoption as days since each version's first day, with that day.
  const alignOnRelease = (t) => {
    const [pi, vi, si] = ['period', 'app_version', 'share'].map((c) => colIndex(t, c));
    const first = new Map();
    for (const r of t.rows) if (!first.has(r[vi]) || r[pi] < first.get(r[vi])) first.set(r[vi], r[pi]);
    return {
      first,
      table: {
        columns: [{ name: 'days', type: 'int' }, { name: 'app_version', type: 'text' }, t.columns[si]],
        rows: t.rows.map((r) => [Math.round((dayMs(r[pi]) - dayMs(first.get(r[vi]))) / DAY_MS), r[vi], r[si]]),
      },
    };
  };
  // Affected projects per error kind and version, over the projects on that version.
  const errorRate = (answer, [versions]) => {
    const t = answer.table;
    const on = new Map(versions.table.rows.map((r) => [r[colIndex(versions.table, 'app_version')], r[colIndex(versions.table, 'projects')]]));
    return t.rows.map((r) => {
      const n = on.get(r[colIndex(t, 'app_version')]);
      return n ? r[colIndex(t, 'projects')] / n : null;
    });
  };
  const releases = {
    title: 'Releases',
    intro: 'Versions of the tool in use, how fast projects move to a new one, and whether a release fails more or sets up slower.',
    panels: [
      { ...split('versions', 'app-versions', 'Versions in use', 'app_version', 'Projects per version of the tool (newest first).') },
      { id: 'version-adoption', insight: 'app-version-adoption', title: 'Adoption per day', wide: true, question: 'Share of active projects on each version, per day.', draw: chart({ x: 'period', pivot: { key: 'app_version', value: 'share', top: 8 } }) },
      { id: 'since-release', insight: 'app-version-adoption', title: 'Adoption since each release', wide: true, params: sinceReleases,
        question: `Share of active projects on each version, by days since its release (the first day tally saw it, over the last ${RELEASE_LOOKBACK.replace('d', ' days')}).`,
        derived: (answer) => {
          const { first } = alignOnRelease(answer.table);
          const [pi, vi] = ['period', 'app_version'].map((c) => colIndex(answer.table, c));
          return [
            { label: 'released', values: answer.table.rows.map((r) => first.get(r[vi])) },
            { label: 'days since release', values: answer.table.rows.map((r) => fmtInt(Math.round((dayMs(r[pi]) - dayMs(first.get(r[vi]))) / DAY_MS))) },
          ];
        },
        draw: (answer, ctx) => lineChart(alignOnRelease(answer.table).table, { title: ctx.title, x: 'days', days: (d) => 'day ' + d, pivot: { key: 'app_version', value: 'share', top: 8 } }) },
      { id: 'error-rate', insight: 'error-kinds', title: 'Error rate per version', wide: true, params: { group_by: 'app_version' },
        also: (params) => {
          const p = { ...params };
          delete p.group_by;
          return [['app-versions', p]];
        },
        question: 'Projects affected by each error kind, over the projects on that version.',
        derived: (answer, others) => [{ label: 'error rate', values: errorRate(answer, others).map((x) => (x === null ? '—' : fmtPct(x))) }],
        draw: (answer, ctx) => {
          const rates = errorRate(answer, ctx.others);
          const t = answer.table;
          const rateOf = (r) => rates[t.rows.indexOf(r)] || 0;
          return heatTable(t, { title: ctx.title, rows: 'error_kind', cols: 'app_version', value: 'projects', shade: rateOf, text: (r) => fmtPct(rateOf(r)) });
        } },
      { id: 'release-setup', insight: 'setup-time', title: 'Setup time per version', wide: true, bar: 'p90', params: { group_by: 'app_version' }, question: 'p50, p90 and p99 of the install time per version of the tool.' },
    ],
  };

  const retention = {
    title: 'Retention',
    intro: 'Of the projects first seen in a week, how many are active N weeks later.',
    panels: [
      { id: 'retention', insight: 'retention', title: 'Weekly cohorts', wide: true, options: [{ key: 'weeks', param: 'weeks', label: 'Weeks', values: [['8', '8'], ['4', '4'], ['12', '12']] }],
        question: 'Each row a cohort (the week its projects were first seen); each cell the share still active that week.',
        draw: (answer, ctx) => {
          const t = answer.table;
          const [ci, wi, pi] = ['cohort', 'week', 'projects'].map((c) => colIndex(t, c));
          const size = new Map(t.rows.filter((r) => r[wi] === 0).map((r) => [r[ci], r[pi]]));
          const share = (r) => (size.get(r[ci]) ? r[pi] / size.get(r[ci]) : 0);
          return heatTable(t, { title: ctx.title, rows: 'cohort', cols: 'week', value: 'projects', shade: share, colLabel: (w) => 'week ' + w,
            text: (r) => (r[wi] === 0 ? fmtInt(r[pi]) : Math.round(share(r) * 100) + '%') });
        } },
    ],
  };

  // The public page of an app: published (k-anonymous) answers only, no filters.
  const published = {
    title: 'Public analytics',
    intro: 'What anyone may see: every row stands for at least k distinct projects; the rest is hidden.',
    panels: [
      { id: 'active', insight: 'active', title: 'Active projects and machines' },
      { id: 'events', insight: 'events-per-day', title: 'Events per day', wide: true, draw: chart({ x: 'day', series: ['events'] }) },
      { id: 'top-plugins', insight: 'top-plugins', title: 'Top plugins', bar: 'projects' },
      { id: 'env', insight: 'env-split', title: 'Environments', bar: 'projects' },
      { id: 'os', insight: 'os-split', title: 'Operating systems', bar: 'projects' },
      { id: 'runtime-versions', insight: 'runtime-versions', title: 'Runtime versions', bar: 'share' },
      { id: 'versions', insight: 'app-versions', title: 'Versions in use', bar: 'projects' },
      { id: 'ci', insight: 'ci-split', title: 'CI', bar: 'projects' },
    ],
  };

  const privatePages = {
    '/': overview, '/plugins': plugins, '/errors': errors, '/runtimes': runtimes, '/setup-time': setupTime,
    '/releases': releases, '/retention': retention,
  };

  // What an app collects (GET /v1/apps/{app}/schema): every event, property and field, why,
  // and the panels above that show it. The panels are found here, from the pages' own
  // definitions, so that a panel added to a page is listed at once.
  const panelsOf = (insights) => Object.entries(privatePages).flatMap(([path, page]) =>
    page.panels.filter((p) => insights.includes(p.insight)).map((p) => page.title + ': ' + p.title));
  const usedBy = (insights) => {
    const panels = panelsOf(insights);
    return panels.length ? panels.join('; ') : 'no panel yet';
  };
  const table = (id, caption, head, rows) => h('div', { class: 'table-wrap collect' }, h('table', { id, class: 'collect' },
    h('caption', null, caption),
    h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows)));
  const section = (title, ...body) => h('section', { class: 'panel wide' }, h('h2', null, title), ...body);
  const collect = {
    title: 'What we collect',
    render: async (app) => {
      const s = await fetchJson('/v1/apps/' + encodeURIComponent(app) + '/schema');
      const allowed = (p) => (p.allowed ? p.allowed.join(', ') + ' (anything else is stored as other)' : p.max_distinct ? `any; the first ${fmtInt(p.max_distinct)} distinct values are kept, later ones stored as other` : p.type);
      return [
        h('div', { class: 'page-head' }, h('h1', null, 'What ' + s.app + ' collects'),
          h('p', null, `${s.description}. Generated from version ${s.version} of the schema this collector enforces: an event or property not listed here is refused or dropped.`)),
        h('div', { class: 'grid' },
          section('Every event carries',
            table('collect-fields', 'Fields of every event', ['field', 'type', 'values', 'why', 'panels'],
              s.fields.map((f) => h('tr', { 'data-field': f.name }, h('th', { scope: 'row' }, f.name), h('td', null, f.type), h('td', null, f.values), h('td', { class: 'why' }, f.why), h('td', null, usedBy(f.insights)))))),
          section('Events',
            table('collect-events', 'Events', ['event', 'what it means', 'why', 'properties', 'panels'],
              s.events.map((e) => h('tr', { 'data-event': e.name }, h('th', { scope: 'row' }, e.name), h('td', null, e.description || '—'), h('td', { class: 'why' }, e.why), h('td', null, e.props.join(', ') || '—'), h('td', null, usedBy(e.insights)))))),
          section('Properties',
            s.props.length ? table('collect-props', 'Properties', ['property', 'type', 'allowed values', 'why', 'sent with', 'panels'],
              s.props.map((p) => h('tr', { 'data-prop': p.name }, h('th', { scope: 'row' }, p.name), h('td', null, p.type), h('td', null, allowed(p)), h('td', { class: 'why' }, p.why + (p.description ? ' (' + p.description + ')' : '')), h('td', null, p.events.join(', ')), h('td', null, usedBy(p.insights)))))
              : h('p', null, 'No properties: events carry only the fields above.')),
          section('An example payload', h('p', null, 'A batch as the SDK sends it (POST /v1/batch); set ' + s.opt_out.env[2] + ' to see your own.'),
            h('pre', { id: 'collect-example', tabindex: '0' }, JSON.stringify(s.example, null, 2))),
          section('Never collected', h('ul', { id: 'collect-never' }, s.never_collected.map((n) => h('li', null, n)))),
          section('How long it is kept', h('p', { id: 'collect-retention' }, s.retention)),
          section('How to opt out',
            h('p', null, 'The first of these with an opinion decides:'),
            h('ol', { id: 'collect-consent' }, s.opt_out.consent_order.map((c) => h('li', null, c))),
            h('p', null, 'Environment variables (any value but empty, 0, false, no, off and n):'),
            h('ul', null, s.opt_out.env.map((v) => h('li', null, h('code', null, v)))),
            h('p', null, 'For everyone working on a project, in its manifest:'),
            h('ul', null, s.opt_out.manifest.map((v) => h('li', null, h('code', null, v))))),
          section('Changes between schema versions',
            table('collect-changes', 'Changes', ['version', 'what changed'],
              s.changes.map((c) => h('tr', null, h('th', { scope: 'row' }, String(c.version)), h('td', null, c.what)))))),
      ];
    },
  };

  Tally.start({ ...privatePages, '/public': published, '/collect': collect });
})();
