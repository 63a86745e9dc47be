/* The usage view's numbers: /api/usage answers shaped into what each chart and table shows.
 *
 * No DOM, no state: every function takes answers (SPEC section 10) and returns plain data,
 * so a chart and its table are drawn from the same numbers. Bucket starts are the server's
 * ISO strings in the asked zone ("2026-11-20T00:00:00+01:00"): their local date and hour are
 * read from the string itself, so nothing here depends on the browser's own zone.
 */

// At most this many groups get a series of their own; the rest are summed as "Other".
export const SERIES_MAX = 8;
// Top projects / sessions: this many bars, the rest summed in one row.
export const TOP_MAX = 10;
export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

const OTHER = '\u0000other';

/** A group value as a Map key (null is a group of its own: usage with no model, say). */
export const groupKey = (group) => (group === null || group === undefined ? '\u0000none' : `g:${group}`);

/** The cost in USD, or null when it is unpriced (never 0 for "unknown"). */
export function usdOf(cost) {
  return cost && typeof cost.usd === 'number' ? cost.usd : null;
}

/** What an entry (a bucket, a group, the totals) measures: its cost (null: unpriced) or its tokens. */
export function measure(entry, metric) {
  if (!entry) return 0;
  return metric === 'cost' ? usdOf(entry.cost) : (entry.tokens && entry.tokens.total) || 0;
}

function emptyTokens() {
  return { input: 0, output: 0, cacheRead: 0, cacheCreation: 0, total: 0 };
}

/** An accumulator that sums entries as the server sums cells (its basis rules included). */
export function newSum() {
  return {
    tokens: emptyTokens(), ledgerUsd: 0, listPriceUsd: 0, unpricedTokens: 0, hasLedger: false, hasList: false,
    messages: 0, waitingSeconds: 0, count: 0,
  };
}

export function addTo(sum, entry) {
  const t = entry.tokens || {};
  for (const k of ['input', 'output', 'cacheRead', 'cacheCreation', 'total']) sum.tokens[k] += Number(t[k]) || 0;
  const c = entry.cost || {};
  sum.ledgerUsd += Number(c.ledgerUsd) || 0;
  sum.listPriceUsd += Number(c.listPriceUsd) || 0;
  sum.unpricedTokens += Number(c.unpricedTokens) || 0;
  // A basis says which prices were used; an entry that used no tokens (waiting only) used none.
  if ((Number(t.total) || 0) > 0 || typeof c.usd === 'number') {
    if (c.basis === 'ledger' || c.basis === 'mixed') sum.hasLedger = true;
    if ((c.basis === 'list-price' && (Number(t.total) || 0) > 0) || c.basis === 'mixed') sum.hasList = true;
  }
  sum.messages += Number(entry.messages) || 0;
  sum.waitingSeconds += Number(entry.waitingSeconds) || 0;
  sum.count += 1;
  return sum;
}

/** The sum as an entry of the answer's own shape (cost with usd and basis). */
export function sumEntry(sum) {
  let basis;
  if (sum.hasLedger && sum.hasList) basis = 'mixed';
  else if (sum.hasLedger) basis = 'ledger';
  else if (sum.hasList || !sum.unpricedTokens) basis = 'list-price';
  else basis = 'unpriced';
  const usd = basis === 'unpriced' ? null : sum.ledgerUsd + sum.listPriceUsd;
  const t = sum.tokens;
  const prompt = t.input + t.cacheRead + t.cacheCreation;
  return {
    tokens: Object.assign({}, t),
    cost: { usd, basis, ledgerUsd: sum.ledgerUsd, listPriceUsd: sum.listPriceUsd, unpricedTokens: sum.unpricedTokens },
    messages: sum.messages,
    waitingSeconds: sum.waitingSeconds,
    cacheHitRatio: prompt ? t.cacheRead / prompt : null,
  };
}

/** cacheRead / (input + cacheRead + cacheCreation), or null with no prompt tokens. */
export function cacheRatio(tokens) {
  if (!tokens) return null;
  const prompt = (tokens.input || 0) + (tokens.cacheRead || 0) + (tokens.cacheCreation || 0);
  return prompt ? (tokens.cacheRead || 0) / prompt : null;
}

/** Epoch seconds of an ISO time (uPlot's x values). */
export const secondsOf = (iso) => Date.parse(iso) / 1000;

/** The local parts of a server ISO time, as written in the asked zone. */
export function localParts(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || '');
  if (!m) return null;
  const [y, mo, d, hh, mi] = m.slice(1).map(Number);
  // Monday 0 … Sunday 6, from the local date alone.
  const weekday = (new Date(Date.UTC(y, mo - 1, d)).getUTCDay() + 6) % 7;
  return { year: y, month: mo, day: d, hour: hh, minute: mi, weekday };
}

/**
 * The groups that get a series, by the chosen measure (the server ranks by cost, then
 * tokens): the first SERIES_MAX, plus one "Other" for the rest.
 */
export function rankGroups(groups, metric) {
  const list = Array.isArray(groups) ? groups.slice() : [];
  if (metric !== 'cost') {
    list.sort((a, b) => (measure(b, 'tokens') - measure(a, 'tokens')) || ((usdOf(b.cost) || 0) - (usdOf(a.cost) || 0)));
  }
  return list;
}

/**
 * Series over time, stacked by group. Answer: {starts, buckets, groups}.
 * Returns {xs, series: [{key, group, label, other}], cells: Map(start -> Map(seriesKey -> entry)),
 *          totals: Map(start -> entry), rows: [start ISO with usage]}.
 */
export function stackedSeries(answer, metric) {
  const ranked = rankGroups(answer.groups, metric);
  const own = ranked.slice(0, ranked.length > SERIES_MAX + 1 ? SERIES_MAX : SERIES_MAX + 1);
  const ownKeys = new Set(own.map((g) => groupKey(g.group)));
  const series = own.map((g) => ({ key: groupKey(g.group), group: g.group, label: g.label, other: false }));
  const othersCount = ranked.length - own.length;
  if (othersCount > 0) series.push({ key: OTHER, group: null, label: `${othersCount} others`, other: true });

  const perStart = new Map(); // start -> Map(seriesKey -> sum or entry)
  const totals = new Map();
  for (const b of Array.isArray(answer.buckets) ? answer.buckets : []) {
    let row = perStart.get(b.start);
    if (!row) {
      row = new Map();
      perStart.set(b.start, row);
      totals.set(b.start, newSum());
    }
    addTo(totals.get(b.start), b);
    const k = groupKey(b.group);
    if (ownKeys.has(k)) {
      row.set(k, b);
    } else {
      const s = row.get(OTHER) || newSum();
      row.set(OTHER, addTo(s, b));
    }
  }
  const cells = new Map();
  for (const [start, row] of perStart) {
    const out = new Map();
    for (const [k, v] of row) out.set(k, k === OTHER ? sumEntry(v) : v);
    cells.set(start, out);
  }
  const totalEntries = new Map();
  for (const [start, sum] of totals) totalEntries.set(start, sumEntry(sum));
  const starts = Array.isArray(answer.starts) ? answer.starts : [];
  return {
    starts,
    xs: starts.map(secondsOf),
    series,
    cells,
    totals: totalEntries,
    rows: starts.filter((s) => perStart.has(s)),
  };
}

/**
 * uPlot data for a stacked bar chart: [xs, cumulative series…], the top of the stack first
 * (uPlot draws series in order: each later, lower bar is drawn over the one before it).
 * Unpriced cells count 0 in a cost chart: their tokens have no height in dollars.
 */
export function stackData(stacked, metric) {
  const n = stacked.series.length;
  const running = stacked.starts.map(() => 0);
  const layers = [];
  for (let i = 0; i < n; i++) {
    const key = stacked.series[i].key;
    const values = stacked.starts.map((start, j) => {
      const cell = stacked.cells.get(start);
      const v = cell ? measure(cell.get(key), metric) : 0;
      running[j] += v || 0;
      return running[j];
    });
    layers.push(values);
  }
  // Series order drawn: top of the stack (all groups) first, the bottom group last.
  return [stacked.xs, ...layers.reverse()];
}

/** Per bucket (all groups together): the cache hit ratio and the time waited for the user. */
export function perBucket(stacked) {
  return stacked.starts.map((start) => {
    const total = stacked.totals.get(start) || null;
    return {
      start,
      x: secondsOf(start),
      entry: total,
      cacheRatio: total ? cacheRatio(total.tokens) : null,
      waitingSeconds: total ? total.waitingSeconds : 0,
    };
  });
}

/**
 * The top groups of an answer by the measure, the rest in one "others" entry.
 * Returns {top: [group entries], others: entry|null, othersCount, max}.
 */
export function topGroups(answer, metric, limit = TOP_MAX) {
  const ranked = rankGroups(answer && answer.groups, metric);
  const top = ranked.slice(0, limit);
  const rest = ranked.slice(limit);
  let others = null;
  if (rest.length) {
    const sum = newSum();
    for (const g of rest) addTo(sum, g);
    others = sumEntry(sum);
  }
  let max = 0;
  for (const g of top) max = Math.max(max, measure(g, metric) || 0);
  return { top, others, othersCount: rest.length, max };
}

/**
 * Activity by weekday × local hour from an hourly answer (any grouping: groups are summed).
 * Returns {cells: [7][24] entries or null, max (by the measure), any}.
 */
export function heatmap(answer, metric) {
  const sums = WEEKDAYS.map(() => Array.from({ length: 24 }, () => null));
  for (const b of Array.isArray(answer && answer.buckets) ? answer.buckets : []) {
    const p = localParts(b.start);
    if (!p) continue;
    const row = sums[p.weekday];
    row[p.hour] = addTo(row[p.hour] || newSum(), b);
  }
  let max = 0;
  let any = false;
  const cells = sums.map((row) => row.map((sum) => {
    if (!sum) return null;
    any = true;
    const entry = sumEntry(sum);
    max = Math.max(max, measure(entry, metric) || 0);
    return entry;
  }));
  return { cells, max, any };
}

/** A heat level 0 (nothing) … 5 (the busiest cell) for a value against the busiest. */
export function heatLevel(value, max) {
  if (!value || !max) return 0;
  return Math.max(1, Math.min(5, Math.ceil((value / max) * 5)));
}

// -- the range -------------------------------------------------------------------------------

const DAY_MS = 86_400_000;

/** YYYY-MM-DD of the given instant in an IANA zone. */
export function localDate(ms, tz) {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date(ms));
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/** A YYYY-MM-DD date moved by whole days (calendar arithmetic, no zone involved). */
export function addDays(date, days) {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d) + days * DAY_MS).toISOString().slice(0, 10);
}

export const isDate = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text || '') && !Number.isNaN(Date.parse(text));

/**
 * The asked range as the API takes it: {from, to} local dates, ``to`` exclusive.
 * ``days``: the last N local days, today included; else ``first``..``last`` inclusive.
 */
export function rangeOf({ days, first, last, tz, now }) {
  if (days) {
    const to = addDays(localDate(now, tz), 1);
    return { from: addDays(to, -days), to };
  }
  return { from: first, to: addDays(last, 1) };
}
