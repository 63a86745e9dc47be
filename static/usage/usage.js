/* helm-monitor: the usage view at /usage (SPEC section 10). Vanilla ES modules, no build step.
 *
 * What it shows comes from GET /api/usage only: spend and tokens over time stacked by the
 * chosen group (uPlot bars), top projects and top sessions (HTML bars), activity by weekday
 * and hour (an HTML table), the cache hit ratio and the time agents waited for you per
 * period. Every chart ([data-usage-chart]) has a table with its numbers ([data-usage-table]).
 *
 * Live: the page joins the dashboard's one stream per browser (feed.js: tabs.js elects the tab
 * that holds it, the others follow through the relay; this tab keeps the same session store,
 * so it can hold the stream for the dashboard's tabs too). Every change of the sessions
 * (session-created / -updated / -deleted, init, refresh, a poll) asks for a refetch: at most
 * one every REFETCH_GAP_MS, never two at once (a change during a fetch fetches again after
 * it), and a change of the controls aborts the fetch in flight (AbortController): its answer
 * would be for a query nobody asks any more. A hidden tab fetches when it is shown again.
 *
 * Authentication is the dashboard's: the server exchanges ?token= for a cookie on the first
 * page load, and every request here is same-origin with that cookie (http.js).
 *
 * Query parameters (all optional, kept in the address as the controls change):
 *   range=7|30|90|365   the last N local days, today included (default 30)
 *   from=, to=          YYYY-MM-DD, both days included (a custom range: range is then ignored)
 *   bucket=hour|day|week|month, by=model|project|source|host|session, metric=cost|tokens
 *   tz=<IANA name>      default: the browser's own zone
 *   backoff=, poll=     the stream's timing, as on the dashboard (settings.js)
 */

import { $, setAttr, setHidden, setText } from '../dom.js';
import { clearBanner, showAuthError } from '../banner.js';
import { feedInfo, reconnectNow, startFeed } from '../feed.js';
import { fetchJSON } from '../http.js';
import * as hosts from '../hosts.js';
import * as notify from '../notify.js';
import { ROOT, params } from '../settings.js';
import * as store from '../store.js';
import { TimeChart } from './charts.js';
import {
  WEEKDAYS, addDays, cacheRatio, groupKey, heatLevel, heatmap, isDate, measure, perBucket, rangeOf,
  stackData, stackedSeries, topGroups,
} from './data.js';
import {
  BASIS, count, duration, durationShort, GROUP_NAMES, groupLabel, groupTitle, ratio, startLabel, tokensShort,
  usd, usdShort,
} from './numbers.js';
import { costCell, num, renderBars, renderCost, renderHeat, renderLegend, renderTable, text } from './tables.js';

const API = ROOT + 'api/usage';
const REFETCH_GAP_MS = 334; // at most ~3 refetches a second
const RANGES = ['7', '30', '90', '365'];
const BUCKETS = ['hour', 'day', 'week', 'month'];
const GROUPS = ['model', 'project', 'source', 'host', 'session'];
const PAD_S = { hour: 1800, day: 43200, week: 302400, month: 1314000 };
// Tick steps of whole units: tokens and seconds have no fractions worth a tick.
const steps = (bases, top) => {
  const out = [];
  for (let scale = 1; scale <= top; scale *= 10) for (const b of bases) out.push(b * scale);
  return out;
};
const TOKEN_STEPS = steps([1, 2, 5], 1e12);
const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 432000, 864000];
const BROWSER_TZ = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch (err) {
    return 'UTC';
  }
})();

const els = {
  main: $('usage'),
  form: $('usage-controls'),
  range: $('range'),
  custom: $('custom-range'),
  from: $('from'),
  to: $('to'),
  bucket: $('bucket'),
  by: $('by'),
  tz: $('tz'),
  status: $('usage-status'),
  zone: $('usage-zone'),
  pricing: $('pricing-note'),
  unpriced: $('unpriced-note'),
  heatNote: $('heatmap-note'),
};
const chartEl = (name) => document.querySelector(`[data-usage-chart="${name}"]`);
const tableEl = (name) => document.querySelector(`[data-usage-table="${name}"]`);
const totalEl = (name) => document.querySelector(`[data-total="${name}"]`);

// -- the controls and the address ------------------------------------------------------------

const state = {
  range: '30', first: '', last: '', bucket: 'day', by: 'model', metric: 'cost', tz: BROWSER_TZ,
};

function readParams(p) {
  const pick = (name, allowed, fallback) => (allowed.includes(p.get(name)) ? p.get(name) : fallback);
  state.range = pick('range', RANGES, '30');
  state.first = '';
  state.last = '';
  if (isDate(p.get('from')) && isDate(p.get('to')) && p.get('from') <= p.get('to')) {
    state.range = 'custom';
    state.first = p.get('from');
    state.last = p.get('to');
  }
  state.bucket = pick('bucket', BUCKETS, 'day');
  state.by = pick('by', GROUPS, 'model');
  state.metric = pick('metric', ['cost', 'tokens'], 'cost');
  state.tz = p.get('tz') && p.get('tz').length <= 64 ? p.get('tz') : BROWSER_TZ;
}

function writeParams() {
  const p = new URLSearchParams(location.search);
  const set = (name, value, fallback) => (value && value !== fallback ? p.set(name, value) : p.delete(name));
  set('range', state.range === 'custom' ? '' : state.range, '30');
  set('from', state.range === 'custom' ? state.first : '', '');
  set('to', state.range === 'custom' ? state.last : '', '');
  set('bucket', state.bucket, 'day');
  set('by', state.by, 'model');
  set('metric', state.metric, 'cost');
  set('tz', state.tz, BROWSER_TZ);
  const query = p.toString();
  const url = location.pathname + (query ? `?${query}` : '') + location.hash;
  if (url !== location.pathname + location.search + location.hash) history.replaceState(null, '', url);
}

function zoneOption(name, note) {
  const option = document.createElement('option');
  option.value = name;
  option.textContent = note ? `${name} (${note})` : name;
  return option;
}

// The browser's list (ICU) keeps a few names IANA has renamed since: the current name is shown
// (the server's zoneinfo knows both).
const RENAMED = {
  'Asia/Calcutta': 'Asia/Kolkata', 'Asia/Katmandu': 'Asia/Kathmandu', 'Europe/Kiev': 'Europe/Kyiv',
  'Asia/Saigon': 'Asia/Ho_Chi_Minh', 'Asia/Rangoon': 'Asia/Yangon', 'Atlantic/Faeroe': 'Atlantic/Faroe',
  'America/Godthab': 'America/Nuuk', 'Pacific/Truk': 'Pacific/Chuuk', 'Pacific/Ponape': 'Pacific/Pohnpei',
  'Pacific/Enderbury': 'Pacific/Kanton',
};

/** The zone list: the browser's, UTC and the asked one at once; every zone on first use. */
function fillZones(all) {
  const names = [BROWSER_TZ, 'UTC', state.tz];
  if (all && typeof Intl.supportedValuesOf === 'function') {
    names.push(...Intl.supportedValuesOf('timeZone').map((name) => RENAMED[name] || name).sort());
  }
  const have = new Set([...els.tz.options].map((o) => o.value));
  for (const name of names) {
    if (have.has(name)) continue;
    have.add(name);
    els.tz.append(zoneOption(name, name === BROWSER_TZ ? 'this browser' : ''));
  }
  els.tz.value = state.tz;
}

function showControls() {
  els.range.value = state.range;
  setHidden(els.custom, state.range !== 'custom');
  if (state.range === 'custom') {
    els.from.value = state.first;
    els.to.value = state.last;
  }
  els.bucket.value = state.bucket;
  els.by.value = state.by;
  for (const radio of els.form.elements.metric) radio.checked = radio.value === state.metric;
  fillZones(false);
}

/** The query the controls ask for: the API's parameters, or null (a custom range half typed). */
function currentQuery() {
  let range;
  if (state.range === 'custom') {
    if (!isDate(state.first) || !isDate(state.last) || state.first > state.last) return null;
    range = rangeOf({ first: state.first, last: state.last });
  } else {
    range = rangeOf({ days: Number(state.range), tz: state.tz, now: Date.now() });
  }
  return { from: range.from, to: range.to, tz: state.tz, bucket: state.bucket, by: state.by, metric: state.metric };
}

function urlOf(q, bucket, by) {
  const p = new URLSearchParams({ from: q.from, to: q.to, tz: q.tz, bucket });
  if (by) p.set('by', by);
  return `${API}?${p}`;
}

// The top projects and sessions need only each group's totals: asked per day, a bucket every
// range of whole local days is aligned to (the answer's buckets are then the days with usage).
const GROUPS_BUCKET = 'day';

/** The requests one view needs; the main answer serves the others where it can. */
function requestsOf(q) {
  return {
    main: urlOf(q, q.bucket, q.by),
    projects: q.by === 'project' ? null : urlOf(q, GROUPS_BUCKET, 'project'),
    sessions: q.by === 'session' ? null : urlOf(q, GROUPS_BUCKET, 'session'),
    hourly: q.bucket === 'hour' ? null : urlOf(q, 'hour', null),
  };
}

function onControlsChange(event) {
  const target = event.target;
  if (target === els.range) {
    if (els.range.value === 'custom' && state.range !== 'custom') {
      // Start from the range shown.
      const q = currentQuery();
      state.first = q ? q.from : '';
      state.last = q ? addDays(q.to, -1) : '';
      els.from.value = state.first;
      els.to.value = state.last;
    }
    state.range = els.range.value;
    setHidden(els.custom, state.range !== 'custom');
  } else if (target === els.from || target === els.to) {
    state.first = els.from.value;
    state.last = els.to.value;
  } else if (target === els.bucket) {
    state.bucket = els.bucket.value;
  } else if (target === els.by) {
    state.by = els.by.value;
  } else if (target === els.tz) {
    state.tz = els.tz.value;
  } else if (target.name === 'metric') {
    state.metric = target.value;
  } else {
    return;
  }
  writeParams();
  if (target.name === 'metric' && last) {
    render(last.query, last.answers, Object.assign({}, last.query, { metric: state.metric })); // no fetch needed
    return;
  }
  queryChanged();
}

// -- fetching --------------------------------------------------------------------------------

const stats = { fetches: 0, aborted: 0, renders: 0, firstDrawMs: null, lastFetchMs: null };
let inflight = null; // {controller, started}
let pending = false; // a refetch is wanted
let lastStart = -Infinity;
let gapTimer = 0;
let hiddenChange = false;
let last = null; // {query, answers}: what is shown

/** The sessions changed (the stream, a relay, a poll): the numbers may have moved. */
function sessionsChanged() {
  if (document.visibilityState === 'hidden') {
    hiddenChange = true;
    return;
  }
  pending = true;
  pump();
}

/** The controls changed: what is in flight answers an old question. */
function queryChanged() {
  if (inflight) {
    inflight.controller.abort();
    stats.aborted += 1;
    inflight = null;
  }
  clearTimeout(gapTimer);
  gapTimer = 0;
  lastStart = -Infinity;
  pending = true;
  pump();
}

function pump() {
  if (!pending || inflight || gapTimer) return;
  const wait = lastStart + REFETCH_GAP_MS - performance.now();
  if (wait > 0) {
    gapTimer = setTimeout(() => {
      gapTimer = 0;
      pump();
    }, wait);
    return;
  }
  pending = false;
  fetchAll();
}

async function fetchAll() {
  const q = currentQuery();
  if (!q) {
    setStatus('error', 'Choose a first day on or before the last one.');
    return;
  }
  const controller = new AbortController();
  const started = performance.now();
  inflight = { controller, started };
  lastStart = started;
  stats.fetches += 1;
  const urls = requestsOf(q);
  const names = Object.keys(urls).filter((k) => urls[k]);
  try {
    const got = await Promise.all(names.map((k) => fetchJSON(urls[k], { signal: controller.signal })));
    if (controller.signal.aborted) return;
    const answers = {};
    names.forEach((k, i) => {
      answers[k] = got[i];
    });
    stats.lastFetchMs = performance.now() - started;
    last = { query: q, answers };
    clearBanner('auth');
    render(q, answers, q);
  } catch (err) {
    if (controller.signal.aborted || (err && err.name === 'AbortError')) return;
    failed(err);
  } finally {
    if (inflight && inflight.controller === controller) inflight = null;
    pump();
  }
}

function failed(err) {
  if (err.status === 401 || err.status === 403) {
    showAuthError(err.status);
    setStatus('error', 'Not allowed to read usage.');
  } else if (err.status === 400) {
    setStatus('error', `The server cannot answer this query: ${err.message}`);
  } else if (err.status === 501) {
    setStatus('error', err.message || 'This server does not count usage.');
  } else if (err.status) {
    setStatus('error', `Usage could not be read (${err.message}).`);
  } else {
    setStatus('error', 'The server is not answering: the numbers update when it is back.');
  }
  if (!last) {
    setAttr(els.main, 'data-usage-state', 'error');
    setAttr(els.main, 'aria-busy', 'false');
  }
}

function setStatus(kind, message) {
  setAttr(els.status, 'data-kind', kind || null);
  setText(els.status, message || '');
}

// -- drawing ---------------------------------------------------------------------------------

const charts = {};

function makeCharts() {
  charts.spend = new TimeChart(chartEl('spend'), { readout: $('readout-spend') });
  charts.tokens = new TimeChart(chartEl('tokens'), { readout: $('readout-tokens') });
  charts.cache = new TimeChart(chartEl('cache'), { kind: 'line', height: 180, readout: $('readout-cache') });
  charts.waiting = new TimeChart(chartEl('waiting'), { height: 180, readout: $('readout-waiting') });
}

const isOther = (s) => s.other;
const colorOf = (s, i) => (isOther(s) ? null : i);

/** A stacked chart and its table: metric 'cost' (spend) or 'tokens'. */
function renderStacked(name, stacked, answer, metric, bucket) {
  const series = stacked.series.map((s, i) => Object.assign({}, s, { colorIndex: colorOf(s, i) }));
  const label = (s) => (s.other ? s.label : groupLabel(answer.by, s.group, s.label));
  const fmtValue = (entry) => (metric === 'cost' ? usd(entry ? entry.cost.usd : null) : count(entry ? entry.tokens.total : 0));
  const cellOf = (entry) => {
    if (!entry) return { text: '' };
    return metric === 'cost' ? costCell(entry.cost) : num(entry.tokens.total);
  };
  charts[name].update({
    data: stackData(stacked, metric),
    series: series.map((s) => ({ label: label(s), colorIndex: s.colorIndex })).reverse(),
    tz: answer.tz,
    pad: PAD_S[bucket] || 43200,
    yMax: null,
    yEmpty: metric === 'cost' ? 1 : 10,
    incrs: metric === 'cost' ? null : TOKEN_STEPS,
    format: metric === 'cost' ? usdShort : tokensShort,
    describe(idx) {
      const start = stacked.starts[idx];
      const cells = stacked.cells.get(start);
      const head = `${startLabel(start, bucket)}: ${fmtValue(stacked.totals.get(start))}`;
      if (!cells) return `${head} (no usage)`;
      const parts = series.filter((s) => cells.has(s.key)).map((s) => `${label(s)} ${fmtValue(cells.get(s.key))}`);
      return `${head} — ${parts.join(' · ')}`;
    },
  });
  renderLegend($(`legend-${name}`), series.map((s) => ({
    label: label(s), title: s.other ? null : groupTitle(answer.by, s.group, s.label), series: s.colorIndex === null ? 'other' : s.colorIndex,
  })));
  // The table: one row per period with usage, one column per series, and the totals.
  const byGroup = new Map((answer.groups || []).map((g) => [groupKey(g.group), g]));
  const othersTotal = stackedOthers(answer, series);
  renderTable(tableEl(name), {
    caption: `${metric === 'cost' ? 'Spend' : 'Tokens'} per ${bucket} by ${GROUP_NAMES[answer.by] || 'group'}`,
    head: ['Period', ...series.map(label), 'Total'],
    rows: stacked.rows.map((start) => {
      const cells = stacked.cells.get(start);
      return [text(startLabel(start, bucket), { time: start }),
        ...series.map((s) => Object.assign(cellOf(cells.get(s.key)), { key: s.key })),
        cellOf(stacked.totals.get(start))];
    }),
    foot: [[text('Total'), ...series.map((s) => cellOf(s.other ? othersTotal : byGroup.get(s.key))), cellOf(answer.totals)]],
  });
}

/** The "Other" series' totals over the range: the groups without a series of their own, summed. */
function stackedOthers(answer, series) {
  const own = new Set(series.filter((s) => !s.other).map((s) => s.key));
  const rest = (answer.groups || []).filter((g) => !own.has(groupKey(g.group)));
  if (!rest.length) return null;
  return topGroups({ groups: rest }, 'cost', 0).others;
}

function renderTotals(answer) {
  const t = answer.totals;
  renderCost(totalEl('cost'), t.cost);
  setText(totalEl('tokens'), tokensShort(t.tokens.total));
  setAttr(totalEl('tokens'), 'title', `${count(t.tokens.total)} tokens`);
  setAttr(totalEl('tokens'), 'data-value', t.tokens.total);
  setText(totalEl('token-parts'),
    `in ${tokensShort(t.tokens.input)} · out ${tokensShort(t.tokens.output)} · cache read ${tokensShort(t.tokens.cacheRead)} · cache write ${tokensShort(t.tokens.cacheCreation)}`);
  setText(totalEl('sessions'), count(t.sessions));
  setAttr(totalEl('sessions'), 'data-value', t.sessions);
  setText(totalEl('messages'), count(t.messages));
  setAttr(totalEl('messages'), 'data-value', t.messages);
  const hit = t.cacheHitRatio === undefined ? cacheRatio(t.tokens) : t.cacheHitRatio;
  setText(totalEl('cacheHitRatio'), ratio(hit));
  setAttr(totalEl('cacheHitRatio'), 'data-value', hit === null ? '' : hit);
  setText(totalEl('waiting'), duration(t.waitingSeconds));
  setAttr(totalEl('waiting'), 'data-value', t.waitingSeconds);
}

function renderProvenance(answer) {
  const t = answer.totals;
  const priced = t.tokens.total - (t.cost.unpricedTokens || 0);
  const coverage = t.tokens.total ? ` Pricing coverage: ${ratio(priced / t.tokens.total)} of tokens.` : '';
  setText(els.pricing, `List prices: ${answer.pricing || 'unknown'} (bundled, offline).${coverage}` +
    (t.cost.basis === 'mixed' ? ` Reported ${usd(t.cost.ledgerUsd)} + estimated ${usd(t.cost.listPriceUsd)}.` : ''));
  const models = Array.isArray(answer.unpricedModels) ? answer.unpricedModels : [];
  setHidden(els.unpriced, models.length === 0);
  setText(els.unpriced, models.length
    ? `No price is known for ${models.join(', ')}: ${count(t.cost.unpricedTokens)} tokens are counted but not in any cost (shown “—”, never $0).`
    : '');
}

function groupRow(by, g, href) {
  const t = g.tokens;
  return [
    text(g.other ? g.label : groupLabel(by, g.group, g.label), { title: g.other ? null : groupTitle(by, g.group, g.label), href: g.other ? null : href }),
    costCell(g.cost), num(t.total), num(t.input), num(t.output), num(t.cacheRead), num(t.cacheCreation),
    { text: ratio(g.cacheHitRatio === undefined ? cacheRatio(t) : g.cacheHitRatio), value: g.cacheHitRatio === undefined ? cacheRatio(t) : g.cacheHitRatio, numeric: true },
    num(g.sessions), num(g.messages), { text: duration(g.waitingSeconds), value: g.waitingSeconds, numeric: true },
  ];
}

const GROUP_HEAD = ['Cost', 'Tokens', 'Input', 'Output', 'Cache read', 'Cache write', 'Cache hit', 'Sessions', 'Messages', 'Waiting'];

function renderTop(name, by, answer, metric) {
  const top = topGroups(answer, metric);
  const hrefOf = (g) => {
    if (g.group === null || g.group === undefined) return null;
    if (by === 'project') return `${ROOT}?project=${encodeURIComponent(g.group)}`;
    if (by === 'session') return `${ROOT}?session=${encodeURIComponent(g.group)}`;
    return null;
  };
  const item = (g, other) => ({
    key: other ? 'others' : groupKey(g.group),
    label: other ? `${top.othersCount} others` : groupLabel(by, g.group, g.label),
    title: other ? null : groupTitle(by, g.group, g.label),
    href: other ? null : hrefOf(g),
    value: measure(g, metric),
    text: metric === 'cost' ? usd(g.cost.usd) : `${tokensShort(g.tokens.total)} tokens`,
    cost: metric === 'cost' ? g.cost : null,
    other,
  });
  const items = top.top.map((g) => item(g, false));
  if (top.others) items.push(item(top.others, true));
  renderBars(chartEl(name), items, top.max);
  const rows = top.top.map((g) => groupRow(by, g, hrefOf(g)));
  if (top.others) rows.push(groupRow(by, Object.assign({ other: true, label: `${top.othersCount} others` }, top.others)));
  renderTable(tableEl(name), {
    caption: `${name === 'top-projects' ? 'Projects' : 'Sessions'} by ${metric}`,
    head: [GROUP_NAMES[by], ...GROUP_HEAD],
    rows,
  });
}

function renderHeatmap(answer, metric, tz) {
  const hm = heatmap(answer, metric);
  const hour = (hr) => String(hr).padStart(2, '0');
  const describe = (d, hr, entry) => {
    if (!entry) return `${WEEKDAYS[d]} ${hour(hr)}:00 — no usage`;
    return `${WEEKDAYS[d]} ${hour(hr)}:00 — ${usd(entry.cost.usd)} · ${count(entry.tokens.total)} tokens · ${count(entry.messages)} messages`;
  };
  renderHeat(chartEl('heatmap'), hm.cells.map((row, d) => row.map((entry, hr) => ({
    level: heatLevel(measure(entry, metric) || 0, hm.max), title: describe(d, hr, entry),
  }))), WEEKDAYS);
  setText(els.heatNote, `Local hours in ${tz}, summed over the range, by ${metric}`);
  const cellOf = (entry) => {
    if (!entry) return { text: '' };
    return metric === 'cost' ? costCell(entry.cost) : num(entry.tokens.total);
  };
  renderTable(tableEl('heatmap'), {
    caption: `Activity by weekday and local hour (${metric})`,
    head: ['Day', ...Array.from({ length: 24 }, (_, hr) => hour(hr))],
    rows: hm.cells.map((row, d) => [text(WEEKDAYS[d]), ...row.map(cellOf)]),
  });
}

function renderPerBucket(stacked, answer, bucket) {
  const per = perBucket(stacked);
  const xs = per.map((p) => p.x);
  charts.cache.update({
    data: [xs, per.map((p) => (p.cacheRatio === null ? null : p.cacheRatio))],
    series: [{ label: 'Cache hit ratio', colorIndex: 0 }],
    tz: answer.tz,
    pad: PAD_S[bucket] || 43200,
    yMax: 1,
    format: (v) => `${Math.round(v * 100)}%`,
    describe: (idx) => `${startLabel(per[idx].start, bucket)}: ${ratio(per[idx].cacheRatio)}`,
  });
  charts.waiting.update({
    data: [xs, per.map((p) => p.waitingSeconds || 0)],
    series: [{ label: 'Waiting for you', colorIndex: 1 }],
    tz: answer.tz,
    pad: PAD_S[bucket] || 43200,
    yMax: null,
    yEmpty: 60,
    incrs: SECOND_STEPS,
    format: durationShort,
    describe: (idx) => `${startLabel(per[idx].start, bucket)}: ${duration(per[idx].waitingSeconds)}`,
  });
  const withUsage = per.filter((p) => p.entry);
  const prompt = (t) => t.input + t.cacheRead + t.cacheCreation;
  renderTable(tableEl('cache'), {
    caption: `Cache hit ratio per ${bucket}`,
    head: ['Period', 'Cache read', 'Prompt tokens', 'Hit ratio'],
    rows: withUsage.filter((p) => prompt(p.entry.tokens) > 0).map((p) => [
      text(startLabel(p.start, bucket), { time: p.start }), num(p.entry.tokens.cacheRead), num(prompt(p.entry.tokens)),
      { text: ratio(p.cacheRatio), value: p.cacheRatio, numeric: true }]),
    foot: [[text('Total'), num(answer.totals.tokens.cacheRead), num(prompt(answer.totals.tokens)),
      { text: ratio(answer.totals.cacheHitRatio), value: answer.totals.cacheHitRatio, numeric: true }]],
  });
  renderTable(tableEl('waiting'), {
    caption: `Time waiting for you per ${bucket}`,
    head: ['Period', 'Waiting', 'Seconds'],
    rows: withUsage.filter((p) => p.waitingSeconds > 0).map((p) => [
      text(startLabel(p.start, bucket), { time: p.start }),
      { text: duration(p.waitingSeconds), value: p.waitingSeconds, numeric: true },
      num(Math.round(p.waitingSeconds))]),
    foot: [[text('Total'), { text: duration(answer.totals.waitingSeconds), value: answer.totals.waitingSeconds, numeric: true },
      num(Math.round(answer.totals.waitingSeconds))]],
  });
}

function rangeText(answer) {
  const first = answer.from ? answer.from.slice(0, 10) : '';
  const lastDay = answer.to ? addDays(answer.to.slice(0, 10), answer.to.slice(11, 19) === '00:00:00' ? -1 : 0) : '';
  return first === lastDay ? first : `${first} – ${lastDay}`;
}

/** Draw every block from the answers of query q (view: the same with the metric to show). */
function render(q, answers, view) {
  const main = answers.main;
  const metric = view.metric;
  const bucket = main.bucket || q.bucket;
  const by = main.by || q.by;
  setText(els.zone, `${rangeText(main)} · times in ${main.tz}${main.tz === BROWSER_TZ ? ' (this browser’s zone)' : ''}`);
  renderTotals(main);
  renderProvenance(main);
  const stacked = stackedSeries(main, metric);
  renderStacked('spend', stacked, main, 'cost', bucket);
  renderStacked('tokens', stacked, main, 'tokens', bucket);
  renderTop('top-projects', 'project', by === 'project' ? main : answers.projects, metric);
  renderTop('top-sessions', 'session', by === 'session' ? main : answers.sessions, metric);
  renderHeatmap(bucket === 'hour' ? main : answers.hourly, metric, main.tz);
  renderPerBucket(stacked, main, bucket);
  setStatus(null, '');
  stats.renders += 1;
  setAttr(els.main, 'data-usage-state', 'ready');
  setAttr(els.main, 'aria-busy', 'false');
  setAttr(els.main, 'data-usage-generation', stats.renders);
  if (stats.firstDrawMs === null) stats.firstDrawMs = performance.now();
}

// -- wiring ----------------------------------------------------------------------------------

function init() {
  readParams(params);
  showControls();
  makeCharts();
  els.form.addEventListener('change', onControlsChange);
  els.form.addEventListener('submit', (event) => event.preventDefault());
  // Every zone only when asked: 400-odd options are not worth building for a glance.
  const fillAll = () => fillZones(true);
  els.tz.addEventListener('focus', fillAll, { once: true });
  els.tz.addEventListener('pointerdown', fillAll, { once: true });
  queryChanged(); // the first fetch goes before the stream opens

  store.subscribe(hosts.update);
  store.subscribe(notify.update);
  store.subscribe(sessionsChanged);
  // A notification opens its session on the dashboard.
  notify.setupNotifications((key) => location.assign(`${ROOT}?session=${encodeURIComponent(key)}`));
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && hiddenChange) {
      hiddenChange = false;
      sessionsChanged();
    }
  });
  window.addEventListener('online', reconnectNow);
  // A relative range moves at local midnight.
  setInterval(() => {
    if (state.range === 'custom' || !last) return;
    const q = currentQuery();
    if (q && (q.from !== last.query.from || q.to !== last.query.to)) queryChanged();
  }, 60_000);
  startFeed();
}

// For tests and the curious: read-only numbers about the page itself.
window.helmUsage = Object.freeze({
  info: () => Object.assign({}, stats, { inflight: Boolean(inflight), pending, connection: feedInfo(), query: last ? last.query : null }),
  basis: BASIS,
});

init();
