/* The session view: one session's head and its conversation, following it live.

It loads the tail of the conversation, pages back as the reader scrolls up, and on every change of
its session fetches what was appended (and the last few messages again, which some
agents rewrite in place). Late answers for a view that was closed or replaced are
dropped (view.generation). A remote session (team mode: the answer says "remote") holds
only the latest messages its agent published; a note says the full transcript stays on its
host, and there is nothing earlier to page back to.
*/

import { $, h, setAttr, setHidden, setText } from './dom.js';
import { flash, showAuthError } from './banner.js';
import {
  STATUS_HINT, absoluteTime, agentLabel, compactNumber, isKey, keyOf, projectKey, relativeTime, shortModel,
  sourceOfKey, statusOf, timeOf, tokenTitle, tokenTotal,
} from './format.js';
import { isOffline, manyHosts } from './hosts.js';
import { HttpError, fetchJSON } from './http.js';
import { focusRow, markSelected as markRow } from './list.js';
import { maskSecrets } from './mask.js';
import { loadMarkdown, loadMarkdownWhenIdle } from './markdown.js';
import { renderBatch, signature, undoFrom } from './messages.js';
import { API, CLAUDE_API } from './settings.js';
import { claudeKeyOf, sessions } from './store.js';

const PAGE_SIZE = 100;
// The view opens at its last messages, a few screens of them; older ones load as the reader
// scrolls up (a page of PAGE_SIZE at a time, begun this far above the top of the view).
const TAIL_SIZE = 40;
const EARLIER_MARGIN_PX = 1200;
const FOLLOW_PAGE_SIZE = 500;
const NEAR_BOTTOM_PX = 96;
// A message opened from a search hit is shown with this many before it.
const HIT_BEFORE = 10;

let onNavigate = () => {};

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
  remoteNote: $('remote-note'),
};

const REMOTE_NOTE = 'The latest messages its agent published; the full transcript stays on its host.';

/** The server's note on a remote session ("the full transcript stays on its host H"), as a sentence. */
function remoteNote(note) {
  const text = typeof note === 'string' && note.trim() ? maskSecrets(note.trim()) : REMOTE_NOTE;
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : sentence + '.';
}

const view = {
  id: null,
  at: null, // the index of the message asked for (a search hit), or null: the tail
  generation: 0, // bumps on every open; late answers for an older view are dropped
  start: 0, // index of the first loaded message
  end: 0, // index after the last loaded message
  loaded: false,
  remote: false, // the server holds only the latest messages (another host's session)
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
  if (session.host && (manyHosts() || view.remote)) {
    const offline = Boolean(session.stale) || isOffline(session.host);
    items.push(['Host', session.host + (offline ? ' (offline)' : '')]);
  }
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

/** Open a session's view; ``at``: the index of a message to show (a search hit), else the tail. */
export function openSession(id, { push, at } = {}) {
  if (!id) return;
  // A first-version bookmark names a Claude Code session by its bare id: listed already, it
  // opens by key at once; otherwise loadTail asks the server for its key.
  if (!isKey(id)) id = claudeKeyOf(id) || id;
  const target = Number.isInteger(at) && at >= 0 ? at : null;
  if (view.id === id) {
    if (target !== null && !(view.loaded && target >= view.start && target < view.end)) {
      view.id = null; // not loaded: open again around it
    } else {
      if (target !== null) showMessage(target);
      detail.scroller.focus({ preventScroll: true });
      return;
    }
  }
  view.at = target;
  view.id = id;
  view.generation += 1;
  view.start = 0;
  view.end = 0;
  view.loaded = false;
  view.remote = false;
  view.following = false;
  view.followAgain = false;
  view.tools = new Map();
  view.results = new Map();
  view.last = null;
  view.recent = [];
  const known = sessions.get(id);
  view.source = (known && known.source) || sourceOfKey(id);
  detail.messages.replaceChildren();
  detail.meta.replaceChildren();
  detail.meta.dataset.layout = '';
  detail.status.replaceChildren();
  setHidden(detail.earlier, true);
  setHidden(detail.newMessages, true);
  setHidden(detail.remoteNote, true);
  setText(detail.state, 'Loading conversation…');
  markSelected(id);
  const session = sessions.get(id);
  if (session) renderDetailHead(session);
  else {
    setText(detail.title, 'Session');
    setText(detail.project, id);
  }
  setHidden(detail.pane, false);
  document.body.classList.add('has-detail');
  onNavigate(Boolean(push));
  loadTail(view.generation);
  // Opened by the reader (click, Enter): keyboard scrolling starts in the conversation.
  if (push) detail.scroller.focus({ preventScroll: true });
}

function markSelected(key) {
  markRow(key);
}

/** The server named the key of the bare Claude Code id being opened: the view and the address take it. */
function adoptKey(session) {
  const key = keyOf(session);
  view.id = key;
  view.source = session.source || sourceOfKey(key);
  markSelected(key);
  upsertQuiet(session);
  onNavigate(false);
}

export function closeSession({ push } = {}) {
  if (!view.id) return;
  const id = view.id;
  view.id = null;
  view.generation += 1;
  view.loaded = false;
  setHidden(detail.pane, true);
  document.body.classList.remove('has-detail');
  detail.messages.replaceChildren();
  markRow(null);
  onNavigate(Boolean(push));
  focusRow(id);
}

function conversationUrl(id, offset, limit) {
  return `${API}/${encodeURIComponent(id)}?offset=${offset}&limit=${limit}`;
}

async function loadTail(generation) {
  const libraries = loadMarkdown(); // meanwhile
  try {
    if (!isKey(view.id)) {
      const found = await fetchJSON(`${CLAUDE_API}/${encodeURIComponent(view.id)}?offset=0&limit=1`);
      if (generation !== view.generation) return;
      if (!found || !found.session || !isKey(keyOf(found.session))) throw new HttpError(404, 'no such session');
      adoptKey(found.session);
    }
    const id = view.id;
    const at = view.at;
    // The tail (one request), unless a message asked for lies before it: then the page around it.
    let page = await fetchJSON(at === null ? `${API}/${encodeURIComponent(id)}?tail=1&limit=${TAIL_SIZE}`
      : conversationUrl(id, Math.max(0, at - HIT_BEFORE), PAGE_SIZE));
    if (generation !== view.generation) return;
    const total = Number(page.total) || 0;
    const tailStart = Math.max(0, total - PAGE_SIZE);
    if (at !== null && total > PAGE_SIZE && at >= tailStart) {
      page = await fetchJSON(conversationUrl(id, tailStart, PAGE_SIZE));
      if (generation !== view.generation) return;
    }
    view.remote = page.remote === true;
    setText(detail.remoteNote, view.remote ? remoteNote(page.note) : '');
    setHidden(detail.remoteNote, !view.remote);
    if (view.remote && sessions.has(view.id)) renderDetailHead(sessions.get(view.id)); // it names the host
    if (page.session) {
      upsertQuiet(page.session);
    }
    await libraries;
    if (generation !== view.generation) return;
    const messages = Array.isArray(page.messages) ? page.messages : [];
    view.start = messages.length ? messages[0].index : (Number(page.total) || 0);
    view.end = page.nextOffset === null || page.nextOffset === undefined
      ? Math.max(view.start + messages.length, Number(page.total) || 0)
      : page.nextOffset;
    detail.messages.append(renderBatch(view, messages, true));
    view.loaded = true;
    updateEarlierButton();
    setText(detail.state, messages.length ? '' : 'No messages yet.');
    if (at === null || !showMessage(at)) scrollToBottom();
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
  const known = sessions.get(keyOf(session));
  if (known && known.updatedAt && session.updatedAt && timeOf(known.updatedAt) > timeOf(session.updatedAt)) return;
  renderDetailHead(session);
}

function updateEarlierButton() {
  setHidden(detail.earlier, view.start <= 0 || view.remote);
  setText(detail.earlier, `Load earlier messages (${view.start} more)`);
}

async function loadEarlier() {
  if (!view.loaded || view.remote || view.start <= 0 || detail.earlier.disabled) return;
  const generation = view.generation;
  const offset = Math.max(0, view.start - PAGE_SIZE);
  const limit = view.start - offset;
  detail.earlier.disabled = true;
  let loaded = false;
  try {
    const page = await fetchJSON(conversationUrl(view.id, offset, limit));
    if (generation !== view.generation) return;
    const messages = (Array.isArray(page.messages) ? page.messages : []).filter((m) => m.index < view.start);
    const scroller = detail.scroller;
    const before = scroller.scrollHeight - scroller.scrollTop;
    // An earlier batch is grouped on its own; the current tail keeps its grouping.
    const saved = view.last;
    detail.messages.prepend(renderBatch(view, messages, false));
    view.last = saved;
    view.start = messages.length ? messages[0].index : offset;
    // Keep what the reader was looking at in place.
    scroller.scrollTop = scroller.scrollHeight - before;
    updateEarlierButton();
    loaded = true;
  } catch (err) {
    if (generation === view.generation) flash('error', `Could not load earlier messages: ${err.message}`);
  } finally {
    detail.earlier.disabled = false;
  }
  // Still in sight (a short page): the observer will not fire again by itself.
  if (loaded && generation === view.generation && !detail.earlier.hidden &&
      detail.earlier.getBoundingClientRect().bottom > detail.scroller.getBoundingClientRect().top - EARLIER_MARGIN_PX) {
    loadEarlier();
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
      if (changed !== null) undoFrom(view, changed);
      const fresh = messages.filter((m) => m.index >= view.end);
      if (fresh.length) {
        detail.messages.append(renderBatch(view, fresh, true));
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

/** Scroll to a loaded message and mark it (a search hit). False when it is not loaded. */
function showMessage(index) {
  // Replies of one API message share an item, and a tool's result sits on its call's card:
  // the item is the last one that starts at or before the message.
  let el = null;
  for (const item of detail.messages.querySelectorAll('[data-index]')) {
    if (Number(item.dataset.index) <= index) el = item;
    else break;
  }
  if (index < view.start || index >= view.end) el = null;
  for (const old of detail.messages.querySelectorAll('.msg-hit')) old.classList.remove('msg-hit');
  if (!el) return false;
  el.classList.add('msg-hit');
  el.scrollIntoView({ block: 'center' });
  return true;
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

export function scrollToBottom() {
  const s = detail.scroller;
  s.scrollTop = s.scrollHeight;
  setHidden(detail.newMessages, true);
}

/* The view names a bare Claude Code id (an old bookmark) and the list now holds it: open it
 * by key, the address rewritten. Whatever the server said about the bare id meanwhile is dropped. */
function resolveBareId() {
  if (!view.id || isKey(view.id)) return;
  const key = claudeKeyOf(view.id);
  if (!key) return;
  view.id = null;
  openSession(key, { push: false });
}


/** The key of the open session (null when none is open). */
export function openKey() {
  return view.id;
}

/** navigate(push): the view opened or closed, the address should say so. */
export function initView({ navigate }) {
  onNavigate = navigate;
  detail.close.addEventListener('click', () => closeSession({ push: true }));
  detail.earlier.addEventListener('click', loadEarlier);
  // Older messages load as the reader scrolls up to them (the button stays, for the keyboard).
  if ('IntersectionObserver' in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !detail.earlier.hidden) loadEarlier();
    }, { root: detail.scroller, rootMargin: `${EARLIER_MARGIN_PX}px 0px 0px 0px` }).observe(detail.earlier);
  }
  detail.newMessages.addEventListener('click', scrollToBottom);
  detail.scroller.addEventListener('scroll', () => {
    if (!detail.newMessages.hidden && nearBottom()) setHidden(detail.newMessages, true);
  }, { passive: true });
}

/** A store change: follow the open session, note its removal, resolve an old bookmark. */
export function update(change) {
  loadMarkdownWhenIdle(); // the list has shown (the store's first change): a later session renders at once
  if (!view.id) return;
  for (const { key } of change.removed) if (key === view.id) sessionRemoved();
  for (const { key, session, previous } of change.changed) if (key === view.id) sessionChanged(session, previous);
  resolveBareId();
}

/** The known hosts changed (hosts.js): the head names the host once there are several. */
export function hostsChanged() {
  const session = view.id ? sessions.get(view.id) : null;
  if (session) renderDetailHead(session);
}

/** The relative time in the head, once a second. */
export function tick(now) {
  const detailTime = detail.meta.querySelector('time');
  if (detailTime && view.id) setText(detailTime, relativeTime(timeOf(detailTime.getAttribute('datetime')), now));
}
