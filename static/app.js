/* helm-monitor: the page. Vanilla JavaScript, no framework, no build step.
 *
 * Data flows one way: the event stream (or, while it is down, polling /all)
 * -> the session map -> rows patched in place. A delta touches only the rows
 * it names, so DOM nodes, scroll position and focus survive every event.
 *
 * Every transcript string reaches the DOM through textContent / text nodes,
 * never as HTML, and goes through maskSecrets() first (the server masks too;
 * this is defence in depth, SPEC section 6).
 *
 * Query parameters (all optional, all kept in bookmarks):
 *   q=<text>         search as you type
 *   project=<path>   show one project only
 *   agent=<source>   show one agent's sessions only (claude-code, codex, opencode, gemini)
 *   session=<key>    the open session view, by the session's key (<host>:<source>:<id>). A
 *                    value without ':' is a Claude Code id from a first-version bookmark: it is
 *                    resolved to its key and the address rewritten (history.replaceState)
 *   backoff=<ms>     first stream reconnect delay (default 1000, at least 20). The delay
 *                    doubles per failed attempt up to 16x that value (at most 30 s), with
 *                    jitter. Tests use a small value so the fallback happens quickly.
 *   poll=<ms>        polling interval once the stream has failed 5 times (default 4000,
 *                    at least 100)
 */
(() => {
  'use strict';

  // -- settings ---------------------------------------------------------------------

  const params = new URLSearchParams(location.search);

  function numberParam(name, fallback, min, max) {
    const value = Number.parseInt(params.get(name) || '', 10);
    return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
  }

  const BACKOFF_BASE_MS = numberParam('backoff', 1000, 20, 30000);
  const BACKOFF_MAX_MS = Math.min(30000, BACKOFF_BASE_MS * 16);
  const POLL_INTERVAL_MS = numberParam('poll', 4000, 100, 60000);
  // SPEC section 7: after this many failed attempts the page polls /all.
  const ATTEMPTS_BEFORE_POLLING = 5;
  // Slower polling once the server said we may not read (no hot loop on 401/403).
  const AUTH_RETRY_MS = 30000;
  const PAGE_SIZE = 100;
  const FOLLOW_PAGE_SIZE = 500;
  // Text longer than this is folded behind a "Show more" button.
  const FOLD_CHARS = 1600;
  const FOLD_LINES = 24;
  const NEAR_BOTTOM_PX = 96;
  const OWN_PARAMS = ['q', 'project', 'agent', 'session'];

  const ROOT = document.body.dataset.root || '/';
  // Every agent's sessions, each named by its key (<host>:<source>:<id>).
  const API = ROOT + 'api/sessions';
  // Claude Code only, named by the agent's own id: resolves first-version bookmarks.
  const CLAUDE_API = ROOT + 'api/claude-sessions';
  const BASE_TITLE = 'helm-monitor';

  // -- masking (SPEC section 6; mirrors helm_monitor/claude/redact.py) ---------------

  const MASK = '\u2022\u2022\u2022\u2022\u2022\u2022';
  const SECRET_PATTERNS = [
    [/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g,
      '-----BEGIN $1PRIVATE KEY-----' + MASK + '-----END $1PRIVATE KEY-----'],
    [/\b(sk-ant-(?:api|admin)\d{0,3}-|sk-ant-|sk-proj-|sk-)[A-Za-z0-9_-]{16,}/g, '$1' + MASK],
    [/\b(gh[pousr]_)[A-Za-z0-9]{20,}/g, '$1' + MASK],
    [/\b(github_pat_)[A-Za-z0-9_]{20,}/g, '$1' + MASK],
    [/\b(glpat-)[A-Za-z0-9_-]{16,}/g, '$1' + MASK],
    [/\b((?:AKIA|ASIA)[0-9A-Z]{4})[0-9A-Z]{12}\b/g, '$1' + MASK],
    [/\b(xox[abposr]-)[A-Za-z0-9-]{10,}/g, '$1' + MASK],
    [/\b(AIza)[0-9A-Za-z_-]{30,}/g, '$1' + MASK],
    [/\b(npm_)[A-Za-z0-9]{30,}/g, '$1' + MASK],
    [/\b(hf_)[A-Za-z0-9]{30,}/g, '$1' + MASK],
    [/\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, '$1' + MASK],
    // Authorization headers: whatever follows the header name and scheme.
    [/\b(authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest)\s+)?)[A-Za-z0-9._~+/=-]{8,}/gi, '$1' + MASK],
    // A scheme word elsewhere: only a random-looking value (a digit or a case change), so
    // prose such as "basic understanding" stays as written.
    [/\b((?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)\s+)(?=[A-Za-z0-9._~+/=-]*(?:[0-9]|[a-z][A-Z]))[A-Za-z0-9._~+/=-]{12,}/g,
      '$1' + MASK],
    // Passwords in URLs: scheme://user:password@host (the user may be empty).
    [/(\b[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/g, '$1' + MASK + '@'],
    [/\b((?:[a-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret))["']?\s*[:=]\s*["']?)([^\s"',;]{6,})/gi,
      '$1' + MASK],
  ];

  function maskSecrets(text) {
    if (text === null || text === undefined) return '';
    let out = String(text);
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    return out;
  }

  // -- small DOM helpers ----------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** Build an element; string children become text nodes (never HTML). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Set text only when it changed: no needless mutations, no flicker. */
  function setText(el, text) {
    const value = text === null || text === undefined ? '' : String(text);
    if (el.textContent !== value) el.textContent = value;
  }

  function setAttr(el, name, value) {
    if (value === null || value === undefined) {
      if (el.hasAttribute(name)) el.removeAttribute(name);
    } else if (el.getAttribute(name) !== String(value)) {
      el.setAttribute(name, String(value));
    }
  }

  function setHidden(el, hidden) {
    if (el.hidden !== hidden) el.hidden = hidden;
  }

  // -- formatting -----------------------------------------------------------------------

  const STATUSES = ['busy', 'waiting', 'idle', 'ended'];
  const STATUS_HINT = {
    busy: 'The agent is working',
    waiting: 'Waiting for you to answer',
    idle: 'Running, ready for a prompt',
    ended: 'No live process',
  };

  function statusOf(session) {
    return STATUSES.includes(session.status) ? session.status : 'ended';
  }

  const isActive = (session) => statusOf(session) !== 'ended';

  function timeOf(iso) {
    const t = iso ? Date.parse(iso) : NaN;
    return Number.isFinite(t) ? t : 0;
  }

  function relativeTime(ms, now) {
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

  function absoluteTime(ms) {
    return ms ? new Date(ms).toLocaleString() : '';
  }

  function compactNumber(n) {
    n = Number(n) || 0;
    if (n < 1000) return String(n);
    if (n < 10000) return (n / 1000).toFixed(1).replace(/\.0$/, '') + 'k';
    if (n < 1e6) return Math.round(n / 1000) + 'k';
    if (n < 1e7) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
    return Math.round(n / 1e6) + 'M';
  }

  function tokenTotal(tokens) {
    if (!tokens) return 0;
    return (tokens.input || 0) + (tokens.output || 0) + (tokens.cacheRead || 0) + (tokens.cacheCreation || 0);
  }

  function tokenTitle(tokens) {
    const t = tokens || {};
    const f = (n) => (Number(n) || 0).toLocaleString();
    return `Input ${f(t.input)} · output ${f(t.output)} · cache read ${f(t.cacheRead)} · cache write ${f(t.cacheCreation)}`;
  }

  function shortModel(model) {
    return model ? String(model).replace(/^claude-/, '') : '';
  }

  // The agents' names as the page shows them (Session.source -> label).
  const AGENTS = { 'claude-code': 'Claude', codex: 'Codex', opencode: 'OpenCode', gemini: 'Gemini' };

  function agentLabel(source) {
    return AGENTS[source] || String(source || 'agent');
  }

  /** What names a session everywhere on the page: its key (an older server: its id). */
  function keyOf(session) {
    return session && typeof session.key === 'string' ? session.key : session && session.id;
  }

  /** A key is <host>:<source>:<id>; a bare id (no ':') is a Claude Code id from an old bookmark. */
  function isKey(value) {
    return String(value).includes(':');
  }

  /** The agent a key names (hosts and sources hold no ':'), for a session not listed yet. */
  function sourceOfKey(value) {
    const parts = String(value).split(':');
    return parts.length >= 3 ? parts[1] : 'claude-code';
  }

  /** The key of the listed Claude Code session with this id (the most recently updated one). */
  function claudeKeyOf(id) {
    let best = null;
    for (const s of state.sessions.values()) {
      if (s.id !== id || (s.source && s.source !== 'claude-code')) continue;
      if (!best || timeOf(s.updatedAt) > timeOf(best.updatedAt)) best = s;
    }
    return best ? keyOf(best) : null;
  }

  function projectKey(session) {
    return session.projectPath || session.projectDir || '(unknown project)';
  }

  function baseName(path) {
    const parts = String(path).split(/[\\/]+/).filter(Boolean);
    return parts.length ? parts[parts.length - 1] : String(path);
  }

  function plural(n, word, many) {
    return `${n} ${n === 1 ? word : (many || word + 's')}`;
  }

  // -- state ----------------------------------------------------------------------------

  const state = {
    sessions: new Map(), // key -> Session
    rows: new Map(), // key -> row record
    groups: new Map(), // project key -> group record
    received: false, // a first full list arrived
    manyHosts: false, // sessions of more than one host are listed
    query: params.get('q') || '',
    project: params.get('project') || '',
    agent: params.get('agent') || '',
  };

  const els = {
    groups: $('groups'),
    empty: $('empty'),
    emptyTitle: $('empty-title'),
    emptyText: $('empty-text'),
    activeCount: document.querySelector('[data-active-count]'),
    statusCounts: $('status-counts'),
    totalCount: $('total-count'),
    connection: document.querySelector('[data-connection-status]'),
    search: $('search'),
    project: $('project-filter'),
    agent: $('agent-filter'),
    refresh: $('refresh'),
    notify: $('notify'),
    banner: $('banner'),
    layout: $('layout'),
  };

  // -- rows -----------------------------------------------------------------------------

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
    const el = h('li', { class: key === view.id ? 'row row-selected' : 'row', 'data-session-key': key,
      'data-session-id': session.id }, link);
    const row = { el, link, badge, subagentStat, f, updated: 0 };
    link.addEventListener('click', (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      openSession(key, { push: true });
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
    setHidden(row.f.host, !state.manyHosts || !session.host);
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
    let group = state.groups.get(key);
    if (!group) {
      group = createGroup(key);
      state.groups.set(key, group);
      projectsChanged = true;
    }
    return group;
  }

  let projectsChanged = false;

  // -- applying state ---------------------------------------------------------------------

  /** Add or patch one session; returns nothing. Layout is done once per batch. */
  function upsert(session) {
    if (!session || typeof session.id !== 'string') return;
    const id = keyOf(session);
    const previous = state.sessions.get(id);
    state.sessions.set(id, session);
    let row = state.rows.get(id);
    if (!row) {
      row = createRow(session);
      state.rows.set(id, row);
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
    if (previous) noticeTransition(previous, session);
    if (id === view.id) sessionChanged(session, previous);
  }

  function remove(id) {
    const row = state.rows.get(id);
    state.sessions.delete(id);
    if (!row) return;
    state.rows.delete(id);
    row.el.remove();
    if (row.group) row.group.ids.delete(id);
    if (id === view.id) sessionRemoved();
  }

  /** init / refresh / a poll: the list is the whole truth. */
  function replaceAll(sessions) {
    const seen = new Set();
    for (const session of sessions) {
      if (session && typeof session.id === 'string') {
        seen.add(keyOf(session));
        upsert(session);
      }
    }
    for (const id of [...state.sessions.keys()]) if (!seen.has(id)) remove(id);
    state.received = true;
    render();
  }

  function patch(sessions, deleted) {
    for (const session of sessions) {
      if (deleted) remove(keyOf(session));
      else upsert(session);
    }
    render();
  }

  function groupOrder(group) {
    let active = false;
    let newest = 0;
    for (const id of group.ids) {
      const s = state.sessions.get(id);
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

    const groups = [];
    for (const [key, group] of state.groups) {
      if (group.ids.size === 0) {
        group.el.remove();
        state.groups.delete(key);
        projectsChanged = true;
        continue;
      }
      group.order = groupOrder(group);
      groups.push(group);
    }
    groups.sort((a, b) => (Number(b.order.active) - Number(a.order.active)) ||
      (b.order.newest - a.order.newest) || (a.key < b.key ? -1 : 1));
    for (const group of groups) {
      const sessions = [...group.ids].map((id) => state.sessions.get(id)).filter(Boolean).sort(compareSessions);
      reorder(group.list, sessions.map((s) => state.rows.get(keyOf(s)).el));
    }
    reorder(els.groups, groups.map((g) => g.el));

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
    resolveBareId();
  }

  /** The view names a bare Claude Code id (an old bookmark) and the list now holds it: open it
   * by key, the address rewritten. Whatever the server said about the bare id meanwhile is dropped. */
  function resolveBareId() {
    if (!view.id || isKey(view.id)) return;
    const key = claudeKeyOf(view.id);
    if (!key) return;
    view.id = null;
    openSession(key, { push: false });
  }

  function renderHosts() {
    const hosts = new Set();
    for (const s of state.sessions.values()) if (s.host) hosts.add(s.host);
    const many = hosts.size > 1;
    if (many === state.manyHosts) return;
    state.manyHosts = many;
    for (const [key, row] of state.rows) setHidden(row.f.host, !many || !state.sessions.get(key).host);
  }

  function renderSummary() {
    const counts = { busy: 0, waiting: 0, idle: 0, ended: 0 };
    for (const s of state.sessions.values()) counts[statusOf(s)] += 1;
    const active = counts.busy + counts.waiting + counts.idle;
    setText(els.activeCount, active);
    const parts = STATUSES.filter((s) => s !== 'ended' && counts[s]).map((s) => `${counts[s]} ${s}`);
    setText(els.statusCounts, parts.join(' · '));
    setText(els.totalCount, plural(state.sessions.size, 'session'));
    const title = active ? `(${active}) ${BASE_TITLE}` : BASE_TITLE;
    if (document.title !== title) document.title = title;
  }

  // -- filtering --------------------------------------------------------------------------

  function haystack(session) {
    return [session.title, session.projectPath, session.projectDir, session.firstPrompt, session.lastPrompt,
      session.gitBranch, session.model, session.id, agentLabel(session.source), state.manyHosts ? session.host : null].filter(Boolean).join('\n').toLowerCase();
  }

  function matches(session, terms) {
    if (state.project && projectKey(session) !== state.project) return false;
    if (state.agent && session.source !== state.agent) return false;
    if (!terms.length) return true;
    const text = haystack(session);
    return terms.every((term) => text.includes(term));
  }

  function applyFilter() {
    const terms = state.query.toLowerCase().split(/\s+/).filter(Boolean);
    let visible = 0;
    for (const group of state.groups.values()) {
      let shown = 0;
      let active = 0;
      for (const id of group.ids) {
        const s = state.sessions.get(id);
        const row = state.rows.get(id);
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
    els.project.classList.toggle('is-set', Boolean(state.project));
    els.agent.classList.toggle('is-set', Boolean(state.agent));
    const filtered = Boolean(terms.length || state.project || state.agent);
    setHidden(els.empty, visible > 0);
    if (visible === 0) {
      if (!state.received) {
        setText(els.emptyTitle, 'Loading sessions…');
        setText(els.emptyText, '');
      } else if (filtered) {
        setText(els.emptyTitle, 'No sessions match');
        const where = [state.project ? 'in this project' : '', state.agent ? `of ${agentLabel(state.agent)}` : '']
          .filter(Boolean).join(' ');
        setText(els.emptyText, state.query ? `Nothing matches “${state.query}”${where ? ' ' + where : ''}.`
          : `No sessions ${where || 'here'}.`);
      } else {
        setText(els.emptyTitle, 'No sessions yet');
        setText(els.emptyText, 'A session shows up here the moment Claude Code, Codex, OpenCode or Gemini CLI starts writing it.');
      }
    }
  }

  function renderProjectOptions() {
    const keys = [...state.groups.keys()];
    if (state.project && !keys.includes(state.project)) keys.push(state.project);
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
    els.project.value = state.project;
  }

  /** The agent filter lists the agents seen; it stays out of the way while there is only one. */
  function renderAgentOptions() {
    const seen = new Set();
    for (const s of state.sessions.values()) if (s.source) seen.add(s.source);
    if (state.agent) seen.add(state.agent);
    const agents = [...seen].sort((a, b) => agentLabel(a).localeCompare(agentLabel(b)));
    const current = [...els.agent.options].slice(1).map((o) => o.value);
    if (!(current.length === agents.length && current.every((v, i) => v === agents[i]))) {
      while (els.agent.options.length > 1) els.agent.remove(1);
      for (const a of agents) els.agent.add(h('option', { value: a }, agentLabel(a)));
    }
    els.agent.value = state.agent;
    els.agent.classList.toggle('is-set', Boolean(state.agent));
    setHidden(els.agent, agents.length < 2 && !state.agent);
  }

  function writeUrl(push) {
    const p = new URLSearchParams(location.search);
    const set = (name, value) => (value ? p.set(name, value) : p.delete(name));
    set('q', state.query);
    set('project', state.project);
    set('agent', state.agent);
    set('session', view.id);
    const query = p.toString();
    const url = location.pathname + (query ? '?' + query : '') + location.hash;
    if (url === location.pathname + location.search + location.hash) return;
    if (push) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
    for (const row of state.rows.values()) setAttr(row.link, 'href', sessionHref(row.el.dataset.sessionKey));
  }

  // -- connection: one EventSource, backoff with jitter, polling fallback ----------------

  const conn = {
    source: null,
    attempts: 0,
    retryTimer: 0,
    pollTimer: 0,
    polling: false,
    pollFailed: false,
    word: '',
  };

  function setConnection(word, hint) {
    const el = els.connection;
    setText(el, word);
    setAttr(el, 'data-state', word.toLowerCase());
    if (hint) setAttr(el, 'title', hint);
    conn.word = word;
  }

  function connect() {
    clearTimeout(conn.retryTimer);
    conn.retryTimer = 0;
    if (conn.source) return;
    if (!conn.polling) setConnection('Connecting', 'Connecting to the event stream');
    const source = new EventSource(API + '/stream');
    conn.source = source;
    const handle = (fn) => (event) => {
      if (conn.source !== source) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      fn(Array.isArray(data && data.sessions) ? data.sessions : []);
    };
    source.addEventListener('open', () => {
      if (conn.source !== source) return;
      stopPolling();
      clearBanner('auth');
      clearBanner('offline');
      setConnection('Live', 'Receiving live updates');
    });
    source.addEventListener('init', handle((sessions) => {
      conn.attempts = 0;
      replaceAll(sessions);
    }));
    source.addEventListener('refresh', handle((sessions) => replaceAll(sessions)));
    source.addEventListener('session-created', handle((sessions) => patch(sessions, false)));
    source.addEventListener('session-updated', handle((sessions) => patch(sessions, false)));
    source.addEventListener('session-deleted', handle((sessions) => patch(sessions, true)));
    source.addEventListener('error', () => {
      if (conn.source !== source) return;
      // Close it ourselves: the browser's own retry would ignore our backoff.
      source.close();
      conn.source = null;
      conn.attempts += 1;
      if (conn.attempts >= ATTEMPTS_BEFORE_POLLING) startPolling();
      else setConnection('Connecting', `Reconnecting (attempt ${conn.attempts + 1})`);
      scheduleReconnect();
    });
  }

  function backoffDelay(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
    // Equal jitter: never less than half the ceiling, so many tabs do not retry in step.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  function scheduleReconnect(delay) {
    clearTimeout(conn.retryTimer);
    conn.retryTimer = setTimeout(connect, delay === undefined ? backoffDelay(conn.attempts) : delay);
  }

  function startPolling() {
    if (!conn.polling) {
      conn.polling = true;
      conn.pollFailed = false;
      setConnection('Polling', `The event stream is unavailable; checking every ${Math.round(POLL_INTERVAL_MS / 100) / 10} s`);
      poll();
    }
  }

  function stopPolling() {
    conn.polling = false;
    clearTimeout(conn.pollTimer);
    conn.pollTimer = 0;
  }

  async function poll() {
    if (!conn.polling) return;
    let next = POLL_INTERVAL_MS;
    try {
      const sessions = await fetchJSON(API + '/all');
      if (!conn.polling) return;
      clearBanner('auth');
      clearBanner('offline');
      replaceAll(Array.isArray(sessions) ? sessions : []);
      if (conn.pollFailed && !conn.source) {
        // The server is back: try the stream now rather than at the end of a long backoff.
        conn.attempts = Math.min(conn.attempts, ATTEMPTS_BEFORE_POLLING);
        scheduleReconnect(0);
      }
      conn.pollFailed = false;
    } catch (err) {
      conn.pollFailed = true;
      if (err.status === 401 || err.status === 403) {
        next = Math.max(next, AUTH_RETRY_MS);
        showAuthError(err.status);
      } else {
        showBanner('offline', 'The server is not answering. Showing the last known state; retrying…');
      }
    }
    if (conn.polling) {
      clearTimeout(conn.pollTimer);
      conn.pollTimer = setTimeout(poll, next);
    }
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, Object.assign({
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    }, options || {}));
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
      throw new HttpError(response.status, message);
    }
    return body;
  }

  // -- banners ----------------------------------------------------------------------------

  let bannerKind = '';

  function showBanner(kind, text) {
    bannerKind = kind;
    setText(els.banner, text);
    setAttr(els.banner, 'data-kind', kind);
    setHidden(els.banner, false);
  }

  function clearBanner(kind) {
    if (bannerKind && (!kind || kind === bannerKind)) {
      bannerKind = '';
      setHidden(els.banner, true);
    }
  }

  function showAuthError(status) {
    showBanner('auth', status === 401
      ? 'Not signed in: open this page once with ?token=<your token> (the server keeps you signed in with a cookie).'
      : 'Access refused (403): this host name or origin is not allowed by the server.');
  }

  let toastTimer = 0;
  function flash(kind, text) {
    showBanner(kind, text);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => clearBanner(kind), 6000);
  }

  // -- refresh ----------------------------------------------------------------------------

  async function refresh() {
    if (els.refresh.getAttribute('aria-busy') === 'true') return;
    els.refresh.setAttribute('aria-busy', 'true');
    try {
      await fetchJSON(API + '/refresh', { method: 'POST' });
      // The stream delivers a refresh event; without a stream, read the list ourselves.
      if (!conn.source || conn.word !== 'Live') replaceAll(await fetchJSON(API + '/all'));
    } catch (err) {
      if (err.status === 401 || err.status === 403) showAuthError(err.status);
      else flash('error', `Refresh failed: ${err.message}`);
    } finally {
      els.refresh.setAttribute('aria-busy', 'false');
    }
  }

  // -- notifications (opt-in) ------------------------------------------------------------

  const NOTIFY_KEY = 'helm-monitor.notify';
  let notifyOn = false;

  function setupNotifications() {
    if (!('Notification' in window)) return;
    setHidden(els.notify, false);
    notifyOn = Notification.permission === 'granted' && localStorage.getItem(NOTIFY_KEY) === 'on';
    renderNotifyButton();
    els.notify.addEventListener('click', async () => {
      if (notifyOn) {
        notifyOn = false;
        localStorage.setItem(NOTIFY_KEY, 'off');
      } else {
        let permission = Notification.permission;
        if (permission === 'default') permission = await Notification.requestPermission();
        notifyOn = permission === 'granted';
        localStorage.setItem(NOTIFY_KEY, notifyOn ? 'on' : 'off');
        if (permission === 'denied') flash('error', 'Notifications are blocked for this site in the browser settings.');
      }
      renderNotifyButton();
    });
  }

  function renderNotifyButton() {
    els.notify.setAttribute('aria-pressed', notifyOn ? 'true' : 'false');
    setAttr(els.notify, 'title', notifyOn
      ? 'Notifications on: click to turn them off'
      : 'Notify me when a session waits for me or finishes its turn');
  }

  function noticeTransition(previous, session) {
    if (!notifyOn) return;
    const before = statusOf(previous);
    const after = statusOf(session);
    let text = '';
    if (after === 'waiting' && before !== 'waiting') text = 'is waiting for you';
    else if (before === 'busy' && after === 'idle') text = 'finished its turn';
    if (!text) return;
    try {
      const note = new Notification(`${baseName(projectKey(session))} ${text}`, {
        body: maskSecrets(session.title || 'Untitled session'),
        tag: `helm-${keyOf(session)}`,
        icon: document.querySelector('link[rel="icon"]').href,
      });
      note.addEventListener('click', () => {
        window.focus();
        openSession(keyOf(session), { push: true });
        note.close();
      });
    } catch (err) {
      // Some browsers only allow notifications from a service worker; nothing to do.
    }
  }

  // -- the session view ---------------------------------------------------------------------

  const detail = {
    pane: $('detail'),
    title: $('detail-title'),
    project: $('detail-project'),
    status: $('detail-status'),
    meta: $('detail-meta'),
    scroller: $('conversation'),
    earlier: $('load-earlier'),
    state: $('conversation-state'),
    messages: $('messages'),
    close: $('detail-close'),
    newMessages: $('new-messages'),
  };

  const view = {
    id: null,
    generation: 0, // bumps on every open; late answers for an older view are dropped
    start: 0, // index of the first loaded message
    end: 0, // index after the last loaded message
    loaded: false,
    following: false,
    followAgain: false,
    source: 'claude-code', // the agent of the open session: its replies carry its name
    tools: new Map(), // tool_use id -> card element (results attach to their call)
    results: new Map(), // tool_use id -> texts of the results shown on its card (each shown once)
    last: null, // {messageId, el, body} of the last rendered assistant message, for grouping
    // The last few messages rendered, newest last: {index, sig, undo}. Some agents rewrite a
    // message in place (OpenCode's parts grow, Gemini CLI rewrites a record under its id), so
    // follow() reads these again and re-renders from the first one that changed.
    recent: [],
  };

  function sessionChanged(session, previous) {
    if (session.source) view.source = session.source;
    renderDetailHead(session);
    // init / refresh / polling repeat unchanged sessions: fetch only when the transcript moved.
    const moved = !previous || previous.sizeBytes !== session.sizeBytes ||
      previous.updatedAt !== session.updatedAt || previous.messageCount !== session.messageCount;
    if (view.loaded && moved) follow();
  }

  function sessionRemoved() {
    setText(detail.state, 'This session’s transcript was removed.');
    setAttr(detail.status, 'class', 'badge badge-ended');
  }

  function renderDetailHead(session) {
    const title = maskSecrets(session.title || 'Untitled session');
    setText(detail.title, title);
    setText(detail.project, projectKey(session));
    const status = statusOf(session);
    setAttr(detail.status, 'class', `badge badge-${status}`);
    setAttr(detail.status, 'title', STATUS_HINT[status]);
    if (!detail.status.firstChild) {
      detail.status.append(h('span', { class: 'badge-dot', 'aria-hidden': 'true' }), h('span'));
    }
    setText(detail.status.lastChild, status);
    const items = [
      ['Messages', String(session.messageCount || 0)],
      ['Tokens', compactNumber(tokenTotal(session.tokens)), tokenTitle(session.tokens)],
      ['Model', shortModel(session.model) || '—'],
      ['Branch', session.gitBranch ? maskSecrets(session.gitBranch) : '—'],
      ['Updated', relativeTime(timeOf(session.updatedAt), Date.now()), absoluteTime(timeOf(session.updatedAt)), session.updatedAt],
      ['Started', absoluteTime(timeOf(session.createdAt)) || '—'],
    ];
    if (session.subagentCount) items.push(['Subagents', String(session.subagentCount)]);
    if (session.pid) items.push(['PID', String(session.pid)]);
    items.push(['Agent', agentLabel(session.source) + (session.version ? ' ' + session.version : '')]);
    const key = items.map((i) => i[0]).join('|');
    if (detail.meta.dataset.layout !== key) {
      detail.meta.replaceChildren();
      for (const [label] of items) {
        detail.meta.append(h('div', { class: 'meta-item' }, h('dt', null, label), h('dd')));
      }
      detail.meta.dataset.layout = key;
    }
    items.forEach(([, value, hint, datetime], i) => {
      const dd = detail.meta.children[i].lastChild;
      if (datetime) {
        let time = dd.firstChild;
        if (!time || time.nodeName !== 'TIME') {
          dd.replaceChildren();
          time = dd.appendChild(h('time'));
        }
        setAttr(time, 'datetime', datetime);
        setAttr(time, 'title', hint);
        setText(time, value);
      } else {
        setText(dd, value);
        setAttr(dd, 'title', hint || null);
      }
    });
  }

  function openSession(id, { push } = {}) {
    if (!id) return;
    // A first-version bookmark names a Claude Code session by its bare id: listed already, it
    // opens by key at once; otherwise loadTail asks the server for its key.
    if (!isKey(id)) id = claudeKeyOf(id) || id;
    if (view.id === id) {
      detail.scroller.focus({ preventScroll: true });
      return;
    }
    view.id = id;
    view.generation += 1;
    view.start = 0;
    view.end = 0;
    view.loaded = false;
    view.following = false;
    view.followAgain = false;
    view.tools = new Map();
    view.results = new Map();
    view.last = null;
    view.recent = [];
    const known = state.sessions.get(id);
    view.source = (known && known.source) || sourceOfKey(id);
    detail.messages.replaceChildren();
    detail.meta.replaceChildren();
    detail.meta.dataset.layout = '';
    detail.status.replaceChildren();
    setHidden(detail.earlier, true);
    setHidden(detail.newMessages, true);
    setText(detail.state, 'Loading conversation…');
    markSelected(id);
    const session = state.sessions.get(id);
    if (session) renderDetailHead(session);
    else {
      setText(detail.title, 'Session');
      setText(detail.project, id);
    }
    setHidden(detail.pane, false);
    document.body.classList.add('has-detail');
    writeUrl(Boolean(push));
    loadTail(view.generation);
    // Opened by the reader (click, Enter): keyboard scrolling starts in the conversation.
    if (push) detail.scroller.focus({ preventScroll: true });
  }

  function markSelected(key) {
    for (const row of state.rows.values()) row.el.classList.toggle('row-selected', row.el.dataset.sessionKey === key);
  }

  /** The server named the key of the bare Claude Code id being opened: the view and the address take it. */
  function adoptKey(session) {
    const key = keyOf(session);
    view.id = key;
    view.source = session.source || sourceOfKey(key);
    markSelected(key);
    upsertQuiet(session);
    writeUrl(false);
  }

  function closeSession({ push } = {}) {
    if (!view.id) return;
    const id = view.id;
    view.id = null;
    view.generation += 1;
    view.loaded = false;
    setHidden(detail.pane, true);
    document.body.classList.remove('has-detail');
    detail.messages.replaceChildren();
    const row = state.rows.get(id);
    if (row) row.el.classList.remove('row-selected');
    writeUrl(Boolean(push));
    if (row && !row.el.hidden) row.link.focus({ preventScroll: false });
  }

  function conversationUrl(id, offset, limit) {
    return `${API}/${encodeURIComponent(id)}?offset=${offset}&limit=${limit}`;
  }

  async function loadTail(generation) {
    try {
      if (!isKey(view.id)) {
        const found = await fetchJSON(`${CLAUDE_API}/${encodeURIComponent(view.id)}?offset=0&limit=1`);
        if (generation !== view.generation) return;
        if (!found || !found.session || !isKey(keyOf(found.session))) throw new HttpError(404, 'no such session');
        adoptKey(found.session);
      }
      const id = view.id;
      let page = await fetchJSON(conversationUrl(id, 0, PAGE_SIZE));
      if (generation !== view.generation) return;
      const total = Number(page.total) || 0;
      if (total > PAGE_SIZE) {
        page = await fetchJSON(conversationUrl(id, total - PAGE_SIZE, PAGE_SIZE));
        if (generation !== view.generation) return;
      }
      if (page.session) {
        upsertQuiet(page.session);
      }
      const messages = Array.isArray(page.messages) ? page.messages : [];
      view.start = messages.length ? messages[0].index : (Number(page.total) || 0);
      view.end = page.nextOffset === null || page.nextOffset === undefined
        ? Math.max(view.start + messages.length, Number(page.total) || 0)
        : page.nextOffset;
      detail.messages.append(renderBatch(messages, true));
      view.loaded = true;
      updateEarlierButton();
      setText(detail.state, messages.length ? '' : 'No messages yet.');
      scrollToBottom();
      // Messages written while we were loading:
      if (page.nextOffset !== null && page.nextOffset !== undefined) follow();
    } catch (err) {
      if (generation !== view.generation) return;
      if (err.status === 404) setText(detail.state, 'This session no longer exists.');
      else if (err.status === 401 || err.status === 403) {
        setText(detail.state, 'Not allowed to read this session.');
        showAuthError(err.status);
      } else setText(detail.state, `Could not load the conversation: ${err.message}`);
    }
  }

  /** A session from a conversation answer: patch the list without notifications. */
  function upsertQuiet(session) {
    if (!session || keyOf(session) !== view.id) return;
    const known = state.sessions.get(keyOf(session));
    if (known && known.updatedAt && session.updatedAt && timeOf(known.updatedAt) > timeOf(session.updatedAt)) return;
    renderDetailHead(session);
  }

  function updateEarlierButton() {
    setHidden(detail.earlier, view.start <= 0);
    setText(detail.earlier, `Load earlier messages (${view.start} more)`);
  }

  async function loadEarlier() {
    if (!view.loaded || view.start <= 0 || detail.earlier.disabled) return;
    const generation = view.generation;
    const offset = Math.max(0, view.start - PAGE_SIZE);
    const limit = view.start - offset;
    detail.earlier.disabled = true;
    try {
      const page = await fetchJSON(conversationUrl(view.id, offset, limit));
      if (generation !== view.generation) return;
      const messages = (Array.isArray(page.messages) ? page.messages : []).filter((m) => m.index < view.start);
      const scroller = detail.scroller;
      const before = scroller.scrollHeight - scroller.scrollTop;
      // An earlier batch is grouped on its own; the current tail keeps its grouping.
      const saved = view.last;
      detail.messages.prepend(renderBatch(messages, false));
      view.last = saved;
      view.start = messages.length ? messages[0].index : offset;
      // Keep what the reader was looking at in place.
      scroller.scrollTop = scroller.scrollHeight - before;
      updateEarlierButton();
    } catch (err) {
      if (generation === view.generation) flash('error', `Could not load earlier messages: ${err.message}`);
    } finally {
      detail.earlier.disabled = false;
    }
  }

  /** Fetch what was appended since our last message (and the last few again, which some agents
   * rewrite in place); one request at a time. */
  async function follow() {
    if (!view.loaded) return;
    if (view.following) {
      view.followAgain = true;
      return;
    }
    view.following = true;
    const generation = view.generation;
    try {
      do {
        view.followAgain = false;
        const from = view.recent.length ? Math.min(view.recent[0].index, view.end) : view.end;
        const page = await fetchJSON(conversationUrl(view.id, from, FOLLOW_PAGE_SIZE));
        if (generation !== view.generation) return;
        const total = Number(page.total);
        if (Number.isFinite(total) && total < view.end) {
          // The transcript was rewritten shorter: start over from its tail.
          reloadView();
          return;
        }
        const messages = (Array.isArray(page.messages) ? page.messages : []).filter((m) => m.index >= from);
        // The first message already shown that reads differently now: re-render from there.
        let changed = null;
        for (const m of messages) {
          if (m.index >= view.end) break;
          const seen = view.recent.find((r) => r.index === m.index);
          if (!seen || seen.sig !== signature(m)) {
            changed = m.index;
            break;
          }
        }
        const stick = nearBottom();
        if (changed !== null) undoFrom(changed);
        const fresh = messages.filter((m) => m.index >= view.end);
        if (fresh.length) {
          detail.messages.append(renderBatch(fresh, true));
          view.end = fresh[fresh.length - 1].index + 1;
          setText(detail.state, '');
          if (stick) scrollToBottom();
          else setHidden(detail.newMessages, false);
        }
        // A long burst arrives in several pages.
        if (fresh.length && page.nextOffset !== null && page.nextOffset !== undefined) view.followAgain = true;
      } while (view.followAgain && generation === view.generation);
    } catch (err) {
      if (generation === view.generation && err.status === 404) setText(detail.state, 'This session no longer exists.');
    } finally {
      if (generation === view.generation) view.following = false;
    }
  }

  function reloadView() {
    const id = view.id;
    view.id = null;
    view.following = false;
    openSession(id, { push: false });
  }

  function nearBottom() {
    const s = detail.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    const s = detail.scroller;
    s.scrollTop = s.scrollHeight;
    setHidden(detail.newMessages, true);
  }

  // -- rendering messages --------------------------------------------------------------------

  // How many of the last messages follow() reads again (see view.recent).
  const RECHECK = 4;
  // While a message at the end is rendered: what it added, so that it can be taken back.
  let undoLog = null;

  function signature(message) {
    return JSON.stringify(message);
  }

  /** Note a node added for the message being rendered (nodes put inside an earlier bubble included). */
  function added(node) {
    if (undoLog) undoLog.nodes.push(node);
    return node;
  }

  /** Take back the rendering of every recent message from ``index`` on (newest first). */
  function undoFrom(index) {
    while (view.recent.length && view.recent[view.recent.length - 1].index >= index) {
      const { undo } = view.recent.pop();
      for (let i = undo.nodes.length - 1; i >= 0; i -= 1) undo.nodes[i].remove();
      for (const id of undo.tools) view.tools.delete(id);
      for (const [id, text] of undo.results) {
        const seen = view.results.get(id);
        if (seen) seen.delete(text);
      }
      view.last = undo.last;
    }
    view.end = Math.min(view.end, index);
  }

  /** Render messages into a fragment; one reply's records share one bubble. ``atEnd``: after
   * what is shown (remembered for a re-render), else an earlier page. */
  function renderBatch(messages, atEnd) {
    const fragment = document.createDocumentFragment();
    if (!atEnd) view.last = null;
    for (const message of messages) {
      if (atEnd) undoLog = { nodes: [], tools: [], results: [], last: view.last };
      try {
        const el = renderMessage(message);
        if (el) fragment.append(added(el));
      } finally {
        if (atEnd) {
          view.recent.push({ index: message.index, sig: signature(message), undo: undoLog });
          if (view.recent.length > RECHECK) view.recent.shift();
        }
        undoLog = null;
      }
    }
    return fragment;
  }

  /** A tool result goes to the card of its call when that is shown; the same result twice shows once. */
  function attachResult(block) {
    if (!block || block.type !== 'tool_result' || !block.toolUseId) return false;
    const card = view.tools.get(block.toolUseId);
    if (!card) return false;
    const text = (block.isError ? 'error:' : 'output:') + String(block.text || '');
    let seen = view.results.get(block.toolUseId);
    if (!seen) {
      seen = new Set();
      view.results.set(block.toolUseId, seen);
    }
    if (seen.has(text)) return true;
    seen.add(text);
    if (undoLog) undoLog.results.push([block.toolUseId, text]);
    card.append(added(renderToolResult(block)));
    return true;
  }

  function renderMessage(message) {
    const blocks = Array.isArray(message.blocks) ? message.blocks : [];
    const when = timeOf(message.timestamp);
    const kind = message.kind;

    if (kind === 'tool-result') {
      const loose = blocks.filter((block) => !attachResult(block));
      if (!loose.length) return null;
      view.last = null;
      return messageShell(message, 'tool-result', 'Tool result', when, loose.map(renderBlock));
    }

    if (kind !== 'meta' && (message.role === 'assistant' || kind === 'reply')) {
      // Claude Code splits one API message over records of one id; the other agents write a
      // turn's text, reasoning and tool calls as messages of their own: one bubble for the run.
      const merge = Boolean(view.last) && ((message.messageId && view.last.messageId === message.messageId) ||
        view.source !== 'claude-code');
      let shell = null;
      let body;
      if (merge) {
        body = view.last.body;
      } else {
        if (!blocks.length) return null; // nothing to show (yet): no empty bubble
        shell = messageShell(message, 'reply', agentLabel(view.source), when, [], shortModel(message.model));
        body = shell.querySelector('.msg-body');
      }
      for (const block of blocks) {
        if (attachResult(block)) continue; // OpenCode keeps a call's result in the reply itself
        const el = renderBlock(block);
        body.append(merge ? added(el) : el);
      }
      if (merge) {
        view.last = Object.assign({}, view.last, { messageId: message.messageId || view.last.messageId });
        return null;
      }
      view.last = { messageId: message.messageId, el: shell, body };
      return shell;
    }

    view.last = null;
    if (kind === 'prompt') return messageShell(message, 'prompt', 'You', when, blocks.map(renderBlock));
    // meta: injected context, command output, interruptions, an agent's notices: quiet and folded.
    const text = blocks.filter((b) => b.type === 'text' || b.type === 'thinking').map((b) => b.text).join('\n');
    const firstLine = maskSecrets(text).split('\n').find((l) => l.trim()) || 'System message';
    const details = h('details', { class: 'meta-details' },
      h('summary', null, firstLine.length > 140 ? firstLine.slice(0, 140) + '…' : firstLine),
      ...blocks.map(renderBlock));
    return h('li', { class: 'msg msg-meta', 'data-index': message.index, 'data-kind': 'meta' }, details);
  }

  function messageShell(message, kind, who, when, children, model) {
    const head = h('div', { class: 'msg-head' },
      h('span', { class: 'msg-who' }, who),
      model ? h('span', { class: 'msg-model' }, model) : null,
      when ? h('time', { class: 'msg-time', datetime: message.timestamp, title: absoluteTime(when) },
        new Date(when).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) : null);
    return h('li', { class: `msg msg-${kind}`, 'data-index': message.index, 'data-kind': kind },
      head, h('div', { class: 'msg-body' }, ...children));
  }

  function renderBlock(block) {
    switch (block && block.type) {
      case 'text':
        return renderText(block.text, 'text');
      case 'thinking':
        return h('details', { class: 'thinking' }, h('summary', null, 'Thinking'), renderText(block.text, 'text'));
      case 'tool_use':
        return renderToolUse(block);
      case 'tool_result':
        return renderToolResult(block);
      case 'image':
        return h('div', { class: 'placeholder' }, 'Image');
      default:
        return h('div', { class: 'placeholder' }, `Unsupported content (${String(block && block.type)})`);
    }
  }

  /** Plain text with ``` fences shown as code blocks; everything as text nodes. */
  function renderText(raw, cls) {
    const text = maskSecrets(raw);
    const wrap = h('div', { class: cls });
    const parts = text.split(/^```[^\n]*\n?/m);
    parts.forEach((part, i) => {
      if (!part) return;
      if (i % 2 === 1) wrap.append(h('pre', { class: 'code' }, part.replace(/\n$/, '')));
      else wrap.append(h('p', { class: 'prose' }, part.replace(/^\n+|\n+$/g, '')));
    });
    foldIfLong(wrap, text);
    return wrap;
  }

  function foldIfLong(el, text) {
    const lines = text.split('\n').length;
    if (text.length <= FOLD_CHARS && lines <= FOLD_LINES) return el;
    el.classList.add('folded');
    const button = h('button', { type: 'button', class: 'unfold', 'aria-expanded': 'false' }, 'Show more');
    button.addEventListener('click', () => {
      const folded = el.classList.toggle('folded');
      button.setAttribute('aria-expanded', folded ? 'false' : 'true');
      setText(button, folded ? 'Show more' : 'Show less');
    });
    el.append(button);
    return el;
  }

  /** Tool input: a JSON object reads best as name / value lines; anything else as it came. */
  function renderToolInput(input) {
    let args = null;
    try {
      args = JSON.parse(input);
    } catch (err) {
      args = null;
    }
    if (!args || typeof args !== 'object' || Array.isArray(args) || !Object.keys(args).length) {
      return foldIfLong(h('pre', { class: 'tool-input' }, input), input);
    }
    const list = h('dl', { class: 'tool-input tool-args' });
    const shown = [];
    for (const [name, value] of Object.entries(args)) {
      const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
      list.append(h('dt', null, name), h('dd', null, text));
      shown.push(text);
    }
    // Fold by what is shown: a long script is one line of JSON but many lines on screen.
    return foldIfLong(list, shown.join('\n'));
  }

  function renderToolUse(block) {
    const input = maskSecrets(block.input || '');
    const card = h('div', { class: 'tool' },
      h('div', { class: 'tool-head' },
        h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '›'),
        h('span', { class: 'tool-name' }, maskSecrets(block.name || 'tool'))),
      input ? renderToolInput(input) : null);
    if (block.id) {
      card.dataset.toolUseId = block.id;
      view.tools.set(block.id, card);
      if (undoLog) undoLog.tools.push(block.id);
    }
    return card;
  }

  function renderToolResult(block) {
    const text = maskSecrets(block.text || '');
    const lines = text ? text.split('\n').length : 0;
    const label = block.isError ? 'Error' : 'Output';
    const summary = h('summary', null,
      h('span', { class: 'result-label' }, label),
      h('span', { class: 'result-size' }, text ? ` · ${plural(lines, 'line')}${block.truncated ? ', truncated' : ''}` : ' · empty'));
    const details = h('details', { class: 'tool-result' + (block.isError ? ' tool-error' : '') }, summary,
      foldIfLong(h('pre', { class: 'result-text' }, text), text));
    // Short output and errors are worth reading without a click.
    if (block.isError || (lines <= 6 && text.length < 600)) details.open = true;
    return details;
  }

  // -- ticking relative times ----------------------------------------------------------------

  function tick() {
    const now = Date.now();
    for (const row of state.rows.values()) {
      if (!row.el.hidden) setText(row.f.time, relativeTime(row.updated, now));
    }
    const detailTime = detail.meta.querySelector('time');
    if (detailTime && view.id) setText(detailTime, relativeTime(timeOf(detailTime.getAttribute('datetime')), now));
  }

  // -- keyboard ------------------------------------------------------------------------------

  function visibleRowLinks() {
    return [...els.groups.querySelectorAll('.row:not([hidden]) .row-link')]
      .filter((a) => !a.closest('.group[hidden]'));
  }

  function onKeyDown(event) {
    const target = event.target;
    const typing = target instanceof HTMLElement &&
      (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
    if (event.key === '/' && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      els.search.focus();
      els.search.select();
      return;
    }
    if (event.key === 'Escape') {
      if (target === els.search && els.search.value) return; // the search box clears itself
      if (view.id) {
        event.preventDefault();
        closeSession({ push: true });
      } else if (target === els.search) {
        els.search.blur();
      }
      return;
    }
    const down = event.key === 'ArrowDown' || (!typing && event.key === 'j');
    const up = event.key === 'ArrowUp' || (!typing && event.key === 'k');
    if (!down && !up) return;
    const inList = target instanceof Element && target.classList.contains('row-link');
    if (!inList && !(target === els.search && down)) return;
    const links = visibleRowLinks();
    if (!links.length) return;
    event.preventDefault();
    const i = links.indexOf(target);
    let next;
    if (target === els.search) next = links[0];
    else if (down) next = links[Math.min(links.length - 1, i + 1)];
    else next = i <= 0 ? els.search : links[i - 1];
    next.focus();
    if (next !== els.search) next.scrollIntoView({ block: 'nearest' });
  }

  // -- wiring --------------------------------------------------------------------------------

  function readUrl() {
    const p = new URLSearchParams(location.search);
    state.query = p.get('q') || '';
    state.project = p.get('project') || '';
    state.agent = p.get('agent') || '';
    if (els.search.value !== state.query) els.search.value = state.query;
    renderProjectOptions();
    els.project.value = state.project;
    renderAgentOptions();
    applyFilter();
    const id = p.get('session');
    if (id && id !== view.id) openSession(id, { push: false });
    else if (!id && view.id) closeSession({ push: false });
  }

  function init() {
    els.search.value = state.query;
    els.search.addEventListener('input', () => {
      state.query = els.search.value;
      applyFilter();
      writeUrl(false);
    });
    els.project.addEventListener('change', () => {
      state.project = els.project.value;
      applyFilter();
      writeUrl(true);
    });
    els.agent.addEventListener('change', () => {
      state.agent = els.agent.value;
      applyFilter();
      writeUrl(true);
    });
    $('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      const first = visibleRowLinks()[0];
      if (first) first.focus();
    });
    els.refresh.addEventListener('click', refresh);
    detail.close.addEventListener('click', () => closeSession({ push: true }));
    detail.earlier.addEventListener('click', loadEarlier);
    detail.newMessages.addEventListener('click', scrollToBottom);
    detail.scroller.addEventListener('scroll', () => {
      if (!detail.newMessages.hidden && nearBottom()) setHidden(detail.newMessages, true);
    }, { passive: true });
    document.addEventListener('keydown', onKeyDown);
    window.addEventListener('popstate', readUrl);
    window.addEventListener('online', () => {
      if (!conn.source) scheduleReconnect(0);
    });
    setupNotifications();
    renderProjectOptions();
    renderAgentOptions();
    applyFilter();
    renderSummary();
    setInterval(tick, 1000);
    const id = params.get('session');
    if (id) openSession(id, { push: false });
    connect();
  }

  // A small surface for tests and the curious; read-only in spirit.
  window.helmMonitor = Object.freeze({
    maskSecrets,
    connection: () => ({ state: conn.word, attempts: conn.attempts, polling: conn.polling }),
  });

  init();
})();
