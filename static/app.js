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
 *   session=<id>     the open session view
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
  const OWN_PARAMS = ['q', 'project', 'session'];

  const ROOT = document.body.dataset.root || '/';
  const API = ROOT + 'api/claude-sessions';
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
    busy: 'Claude is working',
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
    sessions: new Map(), // id -> Session
    rows: new Map(), // id -> row record
    groups: new Map(), // project key -> group record
    received: false, // a first full list arrived
    query: params.get('q') || '',
    project: params.get('project') || '',
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
    const link = h('a', { class: 'row-link', href: sessionHref(session.id) },
      badge,
      h('span', { class: 'row-main' },
        f.title,
        h('span', { class: 'row-sub' }, f.project, f.branch, f.model),
        f.prompt),
      h('span', { class: 'row-stats' },
        h('span', { class: 'stat' }, f.messageCount, ' ', f.messagesLabel),
        h('span', { class: 'stat stat-tokens' }, f.tokens, ' ', h('span', { class: 'unit' }, 'tok')),
        subagentStat,
        f.time));
    const el = h('li', { class: session.id === view.id ? 'row row-selected' : 'row', 'data-session-id': session.id }, link);
    const row = { el, link, badge, subagentStat, f, updated: 0 };
    link.addEventListener('click', (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      openSession(session.id, { push: true });
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
    setAttr(row.link, 'aria-label', `${title}, ${status}, ${plural(count, 'message')}, ${baseName(project)}`);
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
    const previous = state.sessions.get(session.id);
    state.sessions.set(session.id, session);
    let row = state.rows.get(session.id);
    if (!row) {
      row = createRow(session);
      state.rows.set(session.id, row);
    }
    const key = projectKey(session);
    if (row.group && row.group.key !== key) {
      row.group.ids.delete(session.id);
      row.group = null;
    }
    if (!row.group) {
      row.group = groupFor(key);
      row.group.ids.add(session.id);
    }
    fillRow(row, session, previous);
    if (previous) noticeTransition(previous, session);
    if (session.id === view.id) sessionChanged(session, previous);
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
        seen.add(session.id);
        upsert(session);
      }
    }
    for (const id of [...state.sessions.keys()]) if (!seen.has(id)) remove(id);
    state.received = true;
    render();
  }

  function patch(sessions, deleted) {
    for (const session of sessions) {
      if (deleted) remove(session && session.id);
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
      reorder(group.list, sessions.map((s) => state.rows.get(s.id).el));
    }
    reorder(els.groups, groups.map((g) => g.el));

    if (keepFocus && document.activeElement !== keepFocus && keepFocus.isConnected) {
      keepFocus.focus({ preventScroll: true });
    }
    if (projectsChanged) {
      projectsChanged = false;
      renderProjectOptions();
    }
    applyFilter();
    renderSummary();
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
      session.gitBranch, session.model, session.id].filter(Boolean).join('\n').toLowerCase();
  }

  function matches(session, terms) {
    if (state.project && projectKey(session) !== state.project) return false;
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
    const filtered = Boolean(terms.length || state.project);
    setHidden(els.empty, visible > 0);
    if (visible === 0) {
      if (!state.received) {
        setText(els.emptyTitle, 'Loading sessions…');
        setText(els.emptyText, '');
      } else if (filtered) {
        setText(els.emptyTitle, 'No sessions match');
        setText(els.emptyText, state.query ? `Nothing matches “${state.query}”${state.project ? ' in this project' : ''}.` : 'This project has no sessions.');
      } else {
        setText(els.emptyTitle, 'No Claude Code sessions yet');
        setText(els.emptyText, 'A session shows up here the moment Claude Code starts writing its transcript.');
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

  function writeUrl(push) {
    const p = new URLSearchParams(location.search);
    const set = (name, value) => (value ? p.set(name, value) : p.delete(name));
    set('q', state.query);
    set('project', state.project);
    set('session', view.id);
    const query = p.toString();
    const url = location.pathname + (query ? '?' + query : '') + location.hash;
    if (url === location.pathname + location.search + location.hash) return;
    if (push) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
    for (const row of state.rows.values()) setAttr(row.link, 'href', sessionHref(row.el.dataset.sessionId));
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
        tag: `helm-${session.id}`,
        icon: document.querySelector('link[rel="icon"]').href,
      });
      note.addEventListener('click', () => {
        window.focus();
        openSession(session.id, { push: true });
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
    tools: new Map(), // tool_use id -> card element (results attach to their call)
    last: null, // {messageId, el, body} of the last rendered assistant message, for grouping
  };

  function sessionChanged(session, previous) {
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
    if (session.version) items.push(['Claude Code', session.version]);
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
    view.last = null;
    detail.messages.replaceChildren();
    detail.meta.replaceChildren();
    detail.meta.dataset.layout = '';
    detail.status.replaceChildren();
    setHidden(detail.earlier, true);
    setHidden(detail.newMessages, true);
    setText(detail.state, 'Loading conversation…');
    for (const row of state.rows.values()) row.el.classList.toggle('row-selected', row.el.dataset.sessionId === id);
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
    const id = view.id;
    try {
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
    if (!session || session.id !== view.id) return;
    const known = state.sessions.get(session.id);
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

  /** Fetch what was appended since our last message; one request at a time. */
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
        const page = await fetchJSON(conversationUrl(view.id, view.end, FOLLOW_PAGE_SIZE));
        if (generation !== view.generation) return;
        const total = Number(page.total);
        if (Number.isFinite(total) && total < view.end) {
          // The transcript was rewritten shorter: start over from its tail.
          reloadView();
          return;
        }
        const messages = (Array.isArray(page.messages) ? page.messages : []).filter((m) => m.index >= view.end);
        if (messages.length) {
          const stick = nearBottom();
          detail.messages.append(renderBatch(messages, true));
          view.end = messages[messages.length - 1].index + 1;
          setText(detail.state, '');
          if (stick) scrollToBottom();
          else setHidden(detail.newMessages, false);
        }
        // A long burst arrives in several pages.
        if (messages.length && page.nextOffset !== null && page.nextOffset !== undefined) view.followAgain = true;
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

  /** Render messages into a fragment; consecutive records of one API reply share one bubble. */
  function renderBatch(messages, atEnd) {
    const fragment = document.createDocumentFragment();
    if (!atEnd) view.last = null;
    for (const message of messages) {
      const el = renderMessage(message);
      if (el) fragment.append(el);
    }
    return fragment;
  }

  function renderMessage(message) {
    const blocks = Array.isArray(message.blocks) ? message.blocks : [];
    const when = timeOf(message.timestamp);

    if (message.kind === 'tool-result') {
      const loose = [];
      for (const block of blocks) {
        const card = block.type === 'tool_result' && block.toolUseId ? view.tools.get(block.toolUseId) : null;
        if (card) card.append(renderToolResult(block));
        else loose.push(block);
      }
      if (!loose.length) return null;
      view.last = null;
      return messageShell(message, 'tool-result', 'Tool result', when, loose.map(renderBlock));
    }

    if (message.role === 'assistant') {
      if (view.last && message.messageId && view.last.messageId === message.messageId) {
        const body = view.last.body;
        for (const block of blocks) body.append(renderBlock(block));
        return null;
      }
      const shell = messageShell(message, 'reply', 'Claude', when, blocks.map(renderBlock), shortModel(message.model));
      view.last = { messageId: message.messageId, el: shell, body: shell.querySelector('.msg-body') };
      return shell;
    }

    view.last = null;
    if (message.kind === 'prompt') return messageShell(message, 'prompt', 'You', when, blocks.map(renderBlock));
    // meta: injected context, command output, interruptions: quiet and folded.
    const text = blocks.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
    const firstLine = maskSecrets(text).split('\n').find((l) => l.trim()) || 'System message';
    const details = h('details', { class: 'meta-details' },
      h('summary', null, firstLine.length > 140 ? firstLine.slice(0, 140) + '…' : firstLine),
      ...blocks.map(renderBlock));
    const li = h('li', { class: 'msg msg-meta', 'data-index': message.index }, details);
    return li;
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
    for (const [name, value] of Object.entries(args)) {
      const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
      list.append(h('dt', null, name), h('dd', null, text));
    }
    return foldIfLong(list, input);
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
      h('pre', { class: 'result-text' }, text));
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
    if (els.search.value !== state.query) els.search.value = state.query;
    renderProjectOptions();
    els.project.value = state.project;
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
