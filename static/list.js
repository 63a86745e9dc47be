/* The session list: rows grouped by project, newest first, active ones on top.

A change from the store touches only the rows it names: DOM nodes, scroll position
and focus survive every event. Filtering (search, project, agent) hides rows.
*/

import { $, h, setAttr, setHidden, setText } from './dom.js';
import {
  STATUSES, STATUS_HINT, absoluteTime, agentLabel, baseName, compactNumber, isActive, keyOf, plural,
  projectKey, relativeTime, shortModel, statusOf, timeOf, tokenTitle, tokenTotal,
} from './format.js';
import { maskSecrets } from './mask.js';
import { BASE_TITLE } from './settings.js';
import { hasReceived, sessions } from './store.js';

/** What the list shows: the search words, one project, one agent (all kept in the address). */
export const filters = { query: '', project: '', agent: '' };

const rows = new Map(); // key -> row record
const groups = new Map(); // project key -> group record
let manyHosts = false; // sessions of more than one host are listed
let selectedKey = null;
let projectsChanged = false;
let onOpen = () => {};

const els = {
  groups: $('groups'),
  empty: $('empty'),
  emptyTitle: $('empty-title'),
  emptyText: $('empty-text'),
  activeCount: document.querySelector('[data-active-count]'),
  statusCounts: $('status-counts'),
  totalCount: $('total-count'),
  project: $('project-filter'),
  agent: $('agent-filter'),
};

/** open(key): a row was clicked. */
export function initList({ open }) {
  onOpen = open;
  renderProjectOptions();
  renderAgentOptions();
  applyFilter();
  renderSummary();
}

/** A store change: patch the rows it names, then lay out once. */
export function update(change) {
  for (const { key } of change.removed) removeRow(key);
  for (const { key, session, previous } of change.changed) upsertRow(key, session, previous);
  render();
}

function upsertRow(id, session, previous) {
  let row = rows.get(id);
  if (!row) {
    row = createRow(session);
    rows.set(id, row);
  }
  const key = projectKey(session);
  if (row.group && row.group.key !== key) {
    row.group.ids.delete(id);
    row.group = null;
  }
  if (!row.group) {
    row.group = groupFor(key);
    row.group.ids.add(id);
  }
  fillRow(row, session, previous);
}

function removeRow(id) {
  const row = rows.get(id);
  if (!row) return;
  rows.delete(id);
  row.el.remove();
  if (row.group) row.group.ids.delete(id);
}

function sessionHref(id) {
  const p = new URLSearchParams(location.search);
  p.set('session', id);
  return '?' + p.toString();
}

function createRow(session) {
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
  const key = keyOf(session);
  const link = h('a', { class: 'row-link', href: sessionHref(key) },
    badge,
    h('span', { class: 'row-main' },
      f.title,
      h('span', { class: 'row-sub' }, f.source, f.host, f.project, f.branch, f.model),
      f.prompt),
    h('span', { class: 'row-stats' },
      h('span', { class: 'stat' }, f.messageCount, ' ', f.messagesLabel),
      h('span', { class: 'stat stat-tokens' }, f.tokens, ' ', h('span', { class: 'unit' }, 'tok')),
      subagentStat,
      f.time));
  const el = h('li', { class: key === selectedKey ? 'row row-selected' : 'row', 'data-session-key': key,
    'data-session-id': session.id }, link);
  const row = { el, link, badge, subagentStat, f, updated: 0 };
  link.addEventListener('click', (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    onOpen(key);
  });
  return row;
}

function fillRow(row, session, previous) {
  const status = statusOf(session);
  const title = maskSecrets(session.title || 'Untitled session');
  setAttr(row.el, 'data-status', status);
  setAttr(row.badge, 'class', `badge badge-${status}`);
  setAttr(row.badge, 'title', STATUS_HINT[status]);
  setText(row.f.status, status);
  setText(row.f.source, agentLabel(session.source));
  setAttr(row.f.source, 'data-source', session.source || null);
  setAttr(row.f.source, 'title', `Agent: ${agentLabel(session.source)}`);
  setText(row.f.host, session.host || '');
  setAttr(row.f.host, 'title', session.host ? `Host: ${session.host}${session.stale ? ' (offline)' : ''}` : null);
  row.el.classList.toggle('row-stale', Boolean(session.stale));
  // The host is worth a chip only once more than one host publishes (SPEC section 7).
  setHidden(row.f.host, !manyHosts || !session.host);
  setText(row.f.title, title);
  setAttr(row.f.title, 'title', title);
  const project = projectKey(session);
  setText(row.f.project, baseName(project));
  setAttr(row.f.project, 'title', project);
  setText(row.f.branch, session.gitBranch ? maskSecrets(session.gitBranch) : '');
  setHidden(row.f.branch, !session.gitBranch);
  setText(row.f.model, shortModel(session.model));
  setHidden(row.f.model, !session.model);
  let prompt = maskSecrets(session.lastPrompt || session.firstPrompt || '');
  // A session titled by its only prompt would show the same words twice.
  if (prompt.replace(/\s+/g, ' ').trim() === title.trim()) prompt = '';
  setText(row.f.prompt, prompt);
  setHidden(row.f.prompt, !prompt);
  const count = Number(session.messageCount) || 0;
  setText(row.f.messageCount, count);
  setText(row.f.messagesLabel, count === 1 ? 'msg' : 'msgs');
  setText(row.f.tokens, compactNumber(tokenTotal(session.tokens)));
  setAttr(row.f.tokens.parentNode, 'title', tokenTitle(session.tokens));
  const agents = Number(session.subagentCount) || 0;
  setText(row.f.subagents, agents);
  setText(row.f.subagentsLabel, agents === 1 ? 'agent' : 'agents');
  setHidden(row.subagentStat, agents <= 0);
  row.updated = timeOf(session.updatedAt);
  setAttr(row.f.time, 'datetime', session.updatedAt || null);
  setAttr(row.f.time, 'title', absoluteTime(row.updated));
  setText(row.f.time, relativeTime(row.updated, Date.now()));
  setAttr(row.link, 'aria-label', `${title}, ${agentLabel(session.source)}, ${status}, ${plural(count, 'message')}, ${baseName(project)}`);
  if (previous && (previous.messageCount !== session.messageCount || statusOf(previous) !== status)) {
    pulse(row.el);
  }
}

function pulse(el) {
  el.classList.remove('row-pulse');
  // Restart the animation on the same node (reading offsetWidth flushes the style).
  void el.offsetWidth;
  el.classList.add('row-pulse');
}

// -- groups ---------------------------------------------------------------------------

function createGroup(key) {
  const name = h('h2', { class: 'group-name', title: key }, baseName(key));
  // The end of a long path matters most: the outer span clips from the left.
  const path = h('span', { class: 'group-path', title: key }, h('span', { class: 'group-path-text' }, key));
  const counts = h('span', { class: 'group-counts' });
  const list = h('ul', { class: 'rows' });
  const el = h('section', { class: 'group', 'data-project': key },
    h('header', { class: 'group-head' }, name, path, counts), list);
  return { key, el, list, counts, ids: new Set() };
}

function groupFor(key) {
  let group = groups.get(key);
  if (!group) {
    group = createGroup(key);
    groups.set(key, group);
    projectsChanged = true;
  }
  return group;
}

function groupOrder(group) {
  let active = false;
  let newest = 0;
  for (const id of group.ids) {
    const s = sessions.get(id);
    if (!s) continue;
    if (isActive(s)) active = true;
    newest = Math.max(newest, timeOf(s.updatedAt));
  }
  return { active, newest };
}

function compareSessions(a, b) {
  const activeDiff = Number(isActive(b)) - Number(isActive(a));
  if (activeDiff) return activeDiff;
  const timeDiff = timeOf(b.updatedAt) - timeOf(a.updatedAt);
  return timeDiff || (a.id < b.id ? -1 : 1);
}

/** Put children of parent in the given order, moving only nodes out of place. */
function reorder(parent, nodes) {
  let cursor = parent.firstElementChild;
  for (const node of nodes) {
    if (node === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      parent.insertBefore(node, cursor);
    }
  }
}

function render() {
  // Moving a focused node blurs it: remember focus and give it back.
  const focused = document.activeElement;
  const keepFocus = focused && els.groups.contains(focused) ? focused : null;

  const order = [];
  for (const [key, group] of groups) {
    if (group.ids.size === 0) {
      group.el.remove();
      groups.delete(key);
      projectsChanged = true;
      continue;
    }
    group.order = groupOrder(group);
    order.push(group);
  }
  order.sort((a, b) => (Number(b.order.active) - Number(a.order.active)) ||
    (b.order.newest - a.order.newest) || (a.key < b.key ? -1 : 1));
  for (const group of order) {
    const members = [...group.ids].map((id) => sessions.get(id)).filter(Boolean).sort(compareSessions);
    reorder(group.list, members.map((s) => rows.get(keyOf(s)).el));
  }
  reorder(els.groups, order.map((g) => g.el));

  if (keepFocus && document.activeElement !== keepFocus && keepFocus.isConnected) {
    keepFocus.focus({ preventScroll: true });
  }
  if (projectsChanged) {
    projectsChanged = false;
    renderProjectOptions();
  }
  renderAgentOptions();
  renderHosts();
  applyFilter();
  renderSummary();
}

function renderHosts() {
  const hosts = new Set();
  for (const s of sessions.values()) if (s.host) hosts.add(s.host);
  const many = hosts.size > 1;
  if (many === manyHosts) return;
  manyHosts = many;
  for (const [key, row] of rows) setHidden(row.f.host, !many || !sessions.get(key).host);
}

function renderSummary() {
  const counts = { busy: 0, waiting: 0, idle: 0, ended: 0 };
  for (const s of sessions.values()) counts[statusOf(s)] += 1;
  const active = counts.busy + counts.waiting + counts.idle;
  setText(els.activeCount, active);
  const parts = STATUSES.filter((s) => s !== 'ended' && counts[s]).map((s) => `${counts[s]} ${s}`);
  setText(els.statusCounts, parts.join(' · '));
  setText(els.totalCount, plural(sessions.size, 'session'));
  const title = active ? `(${active}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
}

// -- filtering --------------------------------------------------------------------------

function haystack(session) {
  return [session.title, session.projectPath, session.projectDir, session.firstPrompt, session.lastPrompt,
    session.gitBranch, session.model, session.id, agentLabel(session.source), manyHosts ? session.host : null].filter(Boolean).join('\n').toLowerCase();
}

function matches(session, terms) {
  if (filters.project && projectKey(session) !== filters.project) return false;
  if (filters.agent && session.source !== filters.agent) return false;
  if (!terms.length) return true;
  const text = haystack(session);
  return terms.every((term) => text.includes(term));
}

function applyFilter() {
  const terms = filters.query.toLowerCase().split(/\s+/).filter(Boolean);
  let visible = 0;
  for (const group of groups.values()) {
    let shown = 0;
    let active = 0;
    for (const id of group.ids) {
      const s = sessions.get(id);
      const row = rows.get(id);
      const ok = matches(s, terms);
      setHidden(row.el, !ok);
      if (ok) {
        shown += 1;
        if (isActive(s)) active += 1;
      }
    }
    setHidden(group.el, shown === 0);
    setText(group.counts, plural(shown, 'session') + (active ? ` · ${active} active` : ''));
    visible += shown;
  }
  els.project.classList.toggle('is-set', Boolean(filters.project));
  els.agent.classList.toggle('is-set', Boolean(filters.agent));
  const filtered = Boolean(terms.length || filters.project || filters.agent);
  setHidden(els.empty, visible > 0);
  if (visible === 0) {
    if (!hasReceived()) {
      setText(els.emptyTitle, 'Loading sessions…');
      setText(els.emptyText, '');
    } else if (filtered) {
      setText(els.emptyTitle, 'No sessions match');
      const where = [filters.project ? 'in this project' : '', filters.agent ? `of ${agentLabel(filters.agent)}` : '']
        .filter(Boolean).join(' ');
      setText(els.emptyText, filters.query ? `Nothing matches “${filters.query}”${where ? ' ' + where : ''}.`
        : `No sessions ${where || 'here'}.`);
    } else {
      setText(els.emptyTitle, 'No sessions yet');
      setText(els.emptyText, 'A session shows up here the moment Claude Code, Codex, OpenCode or Gemini CLI starts writing it.');
    }
  }
}

function renderProjectOptions() {
  const keys = [...groups.keys()];
  if (filters.project && !keys.includes(filters.project)) keys.push(filters.project);
  keys.sort((a, b) => baseName(a).localeCompare(baseName(b)) || a.localeCompare(b));
  const current = [...els.project.options].slice(1).map((o) => o.value);
  if (current.length === keys.length && current.every((v, i) => v === keys[i])) return;
  while (els.project.options.length > 1) els.project.remove(1);
  const names = new Map();
  for (const key of keys) names.set(baseName(key), (names.get(baseName(key)) || 0) + 1);
  for (const key of keys) {
    // Two projects with the same folder name: show the full path to tell them apart.
    const label = names.get(baseName(key)) > 1 ? key : baseName(key);
    els.project.add(h('option', { value: key, title: key }, label));
  }
  els.project.value = filters.project;
}

/** The agent filter lists the agents seen; it stays out of the way while there is only one. */
function renderAgentOptions() {
  const seen = new Set();
  for (const s of sessions.values()) if (s.source) seen.add(s.source);
  if (filters.agent) seen.add(filters.agent);
  const agents = [...seen].sort((a, b) => agentLabel(a).localeCompare(agentLabel(b)));
  const current = [...els.agent.options].slice(1).map((o) => o.value);
  if (!(current.length === agents.length && current.every((v, i) => v === agents[i]))) {
    while (els.agent.options.length > 1) els.agent.remove(1);
    for (const a of agents) els.agent.add(h('option', { value: a }, agentLabel(a)));
  }
  els.agent.value = filters.agent;
  els.agent.classList.toggle('is-set', Boolean(filters.agent));
  setHidden(els.agent, agents.length < 2 && !filters.agent);
}

/** The open session's row is marked (it need not be listed yet). */
export function markSelected(key) {
  selectedKey = key;
  for (const row of rows.values()) row.el.classList.toggle('row-selected', row.el.dataset.sessionKey === key);
}

/** The address changed: every row's link keeps the other parameters. */
export function refreshLinks() {
  for (const row of rows.values()) setAttr(row.link, 'href', sessionHref(row.el.dataset.sessionKey));
}

/** Give the row of ``key`` the focus, if it is shown; true when it was. */
export function focusRow(key) {
  const row = rows.get(key);
  if (!row || row.el.hidden || (row.group && row.group.el.hidden)) return false;
  row.link.focus({ preventScroll: false });
  return true;
}

/** The links of the rows shown, top to bottom (keyboard navigation). */
export function visibleRowLinks() {
  return [...els.groups.querySelectorAll('.row:not([hidden]) .row-link')]
    .filter((a) => !a.closest('.group[hidden]'));
}

/** Every shown row's relative time, once a second. */
export function tick(now) {
  for (const row of rows.values()) {
    if (!row.el.hidden) setText(row.f.time, relativeTime(row.updated, now));
  }
}

/** The filters changed (typing, a select, the address): show what matches. */
export function refilter() {
  renderProjectOptions();
  renderAgentOptions();
  applyFilter();
}
