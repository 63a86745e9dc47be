/* Formatting and naming: statuses, times, numbers, agents, keys. No DOM, no state. */

export const STATUSES = ['busy', 'waiting', 'idle', 'ended'];
export const STATUS_HINT = {
  busy: 'The agent is working',
  waiting: 'Waiting for you to answer',
  idle: 'Running, ready for a prompt',
  ended: 'No live process',
};

export function statusOf(session) {
  return STATUSES.includes(session.status) ? session.status : 'ended';
}

export const isActive = (session) => statusOf(session) !== 'ended';

export function timeOf(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
}

export function relativeTime(ms, now) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hrs = Math.floor(m / 60);
  if (hrs < 24) return `${hrs} h ago`;
  const d = Math.floor(hrs / 24);
  if (d < 60) return `${d} d ago`;
  return new Date(ms).toLocaleDateString();
}

export function absoluteTime(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

export function compactNumber(n) {
  n = Number(n) || 0;
  if (n < 1000) return String(n);
  if (n < 10000) return (n / 1000).toFixed(1).replace(/\.0$/, '') + 'k';
  if (n < 1e6) return Math.round(n / 1000) + 'k';
  if (n < 1e7) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
  return Math.round(n / 1e6) + 'M';
}

export function tokenTotal(tokens) {
  if (!tokens) return 0;
  return (tokens.input || 0) + (tokens.output || 0) + (tokens.cacheRead || 0) + (tokens.cacheCreation || 0);
}

// One number format, made once: Number.toLocaleString makes one per call (0.1 ms; four
// per row, for every row that scrolls or filters in).
const numbers = new Intl.NumberFormat();

export function tokenTitle(tokens) {
  const t = tokens || {};
  const f = (n) => numbers.format(Number(n) || 0);
  return `Input ${f(t.input)} · output ${f(t.output)} · cache read ${f(t.cacheRead)} · cache write ${f(t.cacheCreation)}`;
}

export function shortModel(model) {
  return model ? String(model).replace(/^claude-/, '') : '';
}

// The agents' names as the page shows them (Session.source -> label).
export const AGENTS = { 'claude-code': 'Claude', codex: 'Codex', opencode: 'OpenCode', gemini: 'Gemini' };

export function agentLabel(source) {
  return AGENTS[source] || String(source || 'agent');
}

/** What names a session everywhere on the page: its key (an older server: its id). */
export function keyOf(session) {
  return session && typeof session.key === 'string' ? session.key : session && session.id;
}

/** A key is <host>:<source>:<id>; a bare id (no ':') is a Claude Code id from an old bookmark. */
export function isKey(value) {
  return String(value).includes(':');
}

/** The agent a key names (hosts and sources hold no ':'), for a session not listed yet. */
export function sourceOfKey(value) {
  const parts = String(value).split(':');
  return parts.length >= 3 ? parts[1] : 'claude-code';
}

export function projectKey(session) {
  return session.projectPath || session.projectDir || '(unknown project)';
}

export function baseName(path) {
  const parts = String(path).split(/[\\/]+/).filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path);
}

export function plural(n, word, many) {
  return `${n} ${n === 1 ? word : (many || word + 's')}`;
}

