/* How the usage view writes numbers, times and cost provenance. No DOM, no state.
 *
 * Costs: an unpriced cost is "—", never $0 (SPEC section 10). Every table cell also keeps the
 * exact number in data-value (tables.js), so what is rounded here is only what is read.
 */

import { agentLabel, baseName, shortModel } from '../format.js';

const integer = new Intl.NumberFormat('en-US');
const dollars = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const cents = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', maximumSignificantDigits: 3 });
const percent = new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const UNPRICED = '—';

/** "$12.34"; below a dollar three significant digits ("$0.0633"); null: "—". */
export function usd(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return UNPRICED;
  if (value === 0) return dollars.format(0);
  return Math.abs(value) >= 1 ? dollars.format(value) : cents.format(value);
}

/** Axis ticks: "$1.2k", "$40", "$0.50". */
export function usdShort(value) {
  if (!value) return '$0';
  const a = Math.abs(value);
  if (a >= 1e6) return `$${(value / 1e6).toFixed(1).replace(/\.0$/, '')}M`;
  if (a >= 1e3) return `$${(value / 1e3).toFixed(1).replace(/\.0$/, '')}k`;
  return `$${Number(value.toPrecision(3))}`; // "$125", "$12.5", "$0.075": exact for the axis' steps
}

export const count = (value) => integer.format(Number(value) || 0);

/** Axis ticks and bars: "950", "12.5k", "3.4M", "1.2B". */
export function tokensShort(value) {
  const n = Number(value) || 0;
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 1e6) return `${(n / 1e3).toFixed(a < 1e4 ? 1 : 0).replace(/\.0$/, '')}k`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e7 ? 1 : 0).replace(/\.0$/, '')}M`;
  return `${(n / 1e9).toFixed(1).replace(/\.0$/, '')}B`;
}

export function ratio(value) {
  return value === null || value === undefined || !Number.isFinite(value) ? UNPRICED : percent.format(value);
}

/** "2 h 05 min", "3 min 20 s", "45 s", "0 s". */
export function duration(seconds) {
  const s = Math.round(Number(seconds) || 0);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${String(s % 60).padStart(2, '0')} s` : ''}`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Axis ticks for waiting time (seconds). */
export function durationShort(seconds) {
  const s = Number(seconds) || 0;
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1).replace(/\.0$/, '')}h`;
}

// -- cost provenance -------------------------------------------------------------------------

export const BASIS = {
  ledger: { short: 'reported', long: 'reported by the agent (its own cost ledger)' },
  'list-price': { short: 'list price', long: 'estimated at list price' },
  mixed: { short: 'mixed', long: 'partly reported by the agent, partly estimated at list price' },
  unpriced: { short: 'unpriced', long: 'no price is known for these models: tokens only' },
};

export const basisOf = (cost) => (cost && BASIS[cost.basis] ? cost.basis : 'unpriced');

/** A cost cell's tooltip: its provenance, its parts, what could not be priced. */
export function costTitle(cost) {
  if (!cost) return '';
  const basis = basisOf(cost);
  const parts = [`${usd(cost.usd)}: ${BASIS[basis].long}`];
  if (basis === 'mixed') parts.push(`reported ${usd(cost.ledgerUsd)} + estimated ${usd(cost.listPriceUsd)}`);
  if (cost.unpricedTokens) parts.push(`${count(cost.unpricedTokens)} tokens have no known price and are not counted`);
  return parts.join('; ');
}

// -- names -----------------------------------------------------------------------------------

export const GROUP_NAMES = { model: 'Model', project: 'Project', source: 'Agent', host: 'Host', session: 'Session' };

/** A group's readable name: the server's label, made short where the kind allows. */
export function groupLabel(by, group, label) {
  if (group === null || group === undefined) return by === 'model' ? '(no model)' : '(unknown)';
  if (by === 'source') return agentLabel(group);
  if (by === 'project') return baseName(group);
  if (by === 'model') return shortModel(group);
  return String(label || group);
}

/** The full name, for a tooltip. */
export function groupTitle(by, group, label) {
  if (group === null || group === undefined) return groupLabel(by, group, label);
  if (by === 'session') return label && label !== group ? `${label} (${group})` : String(group);
  return String(group);
}

// -- bucket starts ---------------------------------------------------------------------------

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** A bucket start (server ISO, local to the asked zone) as read: by its own local parts. */
export function startLabel(iso, bucket) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):\d{2}(.*)$/.exec(iso || '');
  if (!m) return String(iso);
  const [y, mo, d, hh, mi] = m.slice(1, 6).map(Number);
  const day = DAYS[new Date(Date.UTC(y, mo - 1, d)).getUTCDay()];
  const date = `${d} ${MONTHS[mo - 1]} ${y}`;
  if (bucket === 'month') return `${MONTHS[mo - 1]} ${y}`;
  if (bucket === 'week') return `Week of ${date}`;
  // (The hour repeated when clocks go back is told apart by its offset, in the cell's title.)
  if (bucket === 'hour') return `${day} ${date} ${String(hh).padStart(2, '0')}:${String(mi).padStart(2, '0')}`;
  return `${day} ${date}`;
}
