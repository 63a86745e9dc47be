/* The list's DOM pieces: one session's row and one project's group card.

A row element is not tied to a session: the list recycles row elements as sessions
scroll in and out of view, and fillRow() writes a session into one (only what differs
from what it showed, so a row that stays on screen keeps its nodes and text). Every
transcript string goes through maskSecrets() and reaches the DOM as text.
*/

import { h, setAttr, setHidden, setText } from './dom.js';
import {
  STATUS_HINT, absoluteTime, agentLabel, baseName, compactNumber, plural, projectKey, relativeTime,
  shortModel, statusOf, timeOf, tokenTitle, tokenTotal,
} from './format.js';
import { maskSecrets } from './mask.js';

// The first date formatted loads the locale's data (tens of ms): do it now, while the
// list is on its way, rather than in the first rendering of its rows.
absoluteTime(Date.now());

const titleOf = (session) => session.title || 'Untitled session';
const promptOf = (session) => session.lastPrompt || session.firstPrompt || '';

/** The row has no prompt line: none, or it would repeat the title. The list lays it out shorter. */
export function shortRow(session) {
  const prompt = promptOf(session);
  if (!prompt) return true;
  const title = titleOf(session).trim();
  if (prompt.length < title.length) return false; // collapsing white space only shortens it
  // Most prompts differ from the title in their first words: compare those first.
  const start = prompt.trimStart();
  if (start.length > 16 && !title.startsWith(start.slice(0, 16).replace(/\s+/g, ' ').trimEnd())) return false;
  return prompt.replace(/\s+/g, ' ').trim() === title;
}

/** A blank row; open(key) when it is clicked. */
export function createRow(open) {
  const f = {
    status: h('span', { 'data-field': 'status' }),
    source: h('span', { class: 'chip chip-agent', 'data-field': 'source' }),
    host: h('span', { class: 'chip chip-host', 'data-field': 'host', hidden: true }),
    title: h('span', { class: 'row-title', 'data-field': 'title' }),
    project: h('span', { class: 'row-project', 'data-field': 'project' }),
    branch: h('span', { class: 'chip chip-branch', 'data-field': 'gitBranch' }),
    model: h('span', { class: 'row-model', 'data-field': 'model' }),
    prompt: h('span', { class: 'row-prompt', 'data-field': 'lastPrompt' }),
    messageCount: h('span', { class: 'num', 'data-field': 'messageCount' }),
    messagesLabel: h('span', { class: 'unit' }),
    tokens: h('span', { class: 'num', 'data-field': 'tokens' }),
    subagents: h('span', { class: 'num', 'data-field': 'subagentCount' }),
    subagentsLabel: h('span', { class: 'unit' }),
    time: h('time', { class: 'row-time', 'data-field': 'updatedAt' }),
  };
  const badge = h('span', { class: 'badge' }, h('span', { class: 'badge-dot', 'aria-hidden': 'true' }), f.status);
  const subagentStat = h('span', { class: 'stat stat-agents' }, f.subagents, ' ', f.subagentsLabel);
  const tokenStat = h('span', { class: 'stat stat-tokens' }, f.tokens, ' ', h('span', { class: 'unit' }, 'tok'));
  const link = h('a', { class: 'row-link' },
    badge,
    h('span', { class: 'row-main' },
      f.title,
      h('span', { class: 'row-sub' }, f.source, f.host, f.project, f.branch, f.model),
      f.prompt),
    h('span', { class: 'row-stats' },
      h('span', { class: 'stat' }, f.messageCount, ' ', f.messagesLabel),
      tokenStat,
      subagentStat,
      f.time));
  const el = h('li', { class: 'row' }, link);
  const row = {
    el, link, badge, subagentStat, tokenStat, f,
    key: null, session: null, fillGen: -1, updated: 0, top: null, pulse: 0,
  };
  link.addEventListener('click', (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (row.key) open(row.key);
  });
  return row;
}

/** Write an entry's session into a row. ctx: {manyHosts, offline (hosts), selectedKey, href(key), gen}. */
export function fillRow(row, entry, ctx) {
  const session = entry.session;
  row.key = entry.key;
  row.session = session;
  row.fillGen = ctx.gen;
  const status = statusOf(session);
  const title = maskSecrets(titleOf(session));
  setAttr(row.el, 'data-session-key', entry.key);
  setAttr(row.el, 'data-session-id', session.id);
  setAttr(row.el, 'data-status', status);
  setAttr(row.el, 'data-short', entry.short ? '' : null);
  row.el.classList.toggle('row-selected', entry.key === ctx.selectedKey);
  // Stale: its host went offline (SPEC section 9); the host-status may say so before the session does.
  const stale = Boolean(session.stale) || Boolean(session.host && ctx.offline.has(session.host));
  row.el.classList.toggle('row-stale', stale);
  setAttr(row.el, 'data-stale', stale ? '' : null);
  setAttr(row.el, 'title', stale
    ? `${session.host || 'Its host'} is offline: this is the session as last heard from it` : null);
  setAttr(row.link, 'href', ctx.href(entry.key));
  setAttr(row.badge, 'class', `badge badge-${status}`);
  setAttr(row.badge, 'title', STATUS_HINT[status]);
  setText(row.f.status, status);
  setText(row.f.source, agentLabel(session.source));
  setAttr(row.f.source, 'data-source', session.source || null);
  setAttr(row.f.source, 'title', `Agent: ${agentLabel(session.source)}`);
  setText(row.f.host, session.host || '');
  setAttr(row.f.host, 'title', session.host ? `Host: ${session.host}${stale ? ' (offline)' : ''}` : null);
  // The host is worth a chip only once more than one host publishes (SPEC section 7).
  setHidden(row.f.host, !ctx.manyHosts || !session.host);
  setText(row.f.title, title);
  setAttr(row.f.title, 'title', title);
  const project = projectKey(session);
  setText(row.f.project, baseName(project));
  setAttr(row.f.project, 'title', project);
  setText(row.f.branch, session.gitBranch ? maskSecrets(session.gitBranch) : '');
  setHidden(row.f.branch, !session.gitBranch);
  setText(row.f.model, shortModel(session.model));
  setHidden(row.f.model, !session.model);
  // A session titled by its only prompt would show the same words twice (shortRow).
  const prompt = entry.short ? '' : maskSecrets(promptOf(session));
  setText(row.f.prompt, prompt);
  setHidden(row.f.prompt, !prompt);
  const count = Number(session.messageCount) || 0;
  setText(row.f.messageCount, count);
  setText(row.f.messagesLabel, count === 1 ? 'msg' : 'msgs');
  setText(row.f.tokens, compactNumber(tokenTotal(session.tokens)));
  setAttr(row.tokenStat, 'title', tokenTitle(session.tokens));
  const agents = Number(session.subagentCount) || 0;
  setText(row.f.subagents, agents);
  setText(row.f.subagentsLabel, agents === 1 ? 'agent' : 'agents');
  setHidden(row.subagentStat, agents <= 0);
  row.updated = timeOf(session.updatedAt);
  setAttr(row.f.time, 'datetime', session.updatedAt || null);
  setAttr(row.f.time, 'title', absoluteTime(row.updated));
  setText(row.f.time, relativeTime(row.updated, Date.now()));
  const where = ctx.manyHosts && session.host ? `, on ${session.host}${stale ? ' (offline)' : ''}` : '';
  setAttr(row.link, 'aria-label',
    `${title}, ${agentLabel(session.source)}${where}, ${status}, ${plural(count, 'message')}, ${baseName(project)}`);
}

/** Flash a row whose session moved on. Two identical animations take turns, so the flash
 * restarts without forcing a style flush. */
export function pulse(row) {
  row.pulse = row.pulse === 1 ? 2 : 1;
  row.link.classList.toggle('pulse-a', row.pulse === 1);
  row.link.classList.toggle('pulse-b', row.pulse === 2);
}

/** A row element going back to the pool: no flash left running on it. */
export function resetRow(row) {
  row.key = null;
  row.session = null;
  row.pulse = 0;
  row.link.classList.remove('pulse-a', 'pulse-b');
}

/** A project's card: its header and the list its shown rows go in. */
export function createGroup(key) {
  const name = h('h2', { class: 'group-name', title: key }, baseName(key));
  // The end of a long path matters most: the outer span clips from the left.
  const path = h('span', { class: 'group-path', title: key }, h('span', { class: 'group-path-text' }, key));
  const counts = h('span', { class: 'group-counts' });
  const list = h('ul', { class: 'rows' });
  const el = h('section', { class: 'group', 'data-project': key },
    h('header', { class: 'group-head' }, name, path, counts), list);
  return { el, list, counts, top: null, height: null };
}

/** The group's header counts: the sessions shown of it, and how many of those are active. */
export function fillGroupCounts(dom, shown, active) {
  setText(dom.counts, plural(shown, 'session') + (active ? ` · ${active} active` : ''));
}
