/* helm-monitor: the page. Vanilla JavaScript ES modules, no framework, no build step.
 *
 * Data flows one way: the feed (the event stream, or polling /all while it is down)
 * -> the store (the session map, which names what each message changed) -> the list,
 * the session view and notifications, each patching only what changed. DOM nodes,
 * scroll position and focus survive every event.
 *
 * Every transcript string reaches the DOM through textContent / text nodes, never as
 * HTML, and goes through maskSecrets() first (the server masks too; this is defence in
 * depth, SPEC section 6). The query parameters the page reads are listed in settings.js.
 *
 * This module wires the others together: the address (filters and the open session),
 * the keyboard, the refresh button.
 */

import { $ } from './dom.js';
import { flash, showAuthError } from './banner.js';
import { feedInfo, isLive, reconnectNow, startFeed } from './feed.js';
import { fetchJSON } from './http.js';
import * as hosts from './hosts.js';
import * as list from './list.js';
import { maskSecrets } from './mask.js';
import * as notify from './notify.js';
import { API, params } from './settings.js';
import * as store from './store.js';
import * as transcripts from './transcript-search.js';
import * as view from './view.js';

const search = $('search');
const projectSelect = $('project-filter');
const agentSelect = $('agent-filter');
const hostSelect = $('host-filter');
const refreshButton = $('refresh');

// -- the address ---------------------------------------------------------------------------

/** The query string (``?…`` or empty) for the filters and the open session. */
function addressQuery() {
  const p = new URLSearchParams(location.search);
  const set = (name, value) => (value ? p.set(name, value) : p.delete(name));
  set('q', list.filters.query);
  set('project', list.filters.project);
  set('agent', list.filters.agent);
  set('host', list.filters.host);
  set('session', view.openKey());
  const query = p.toString();
  return query ? '?' + query : '';
}

let typedUrl = 0; // the address waits for typing to pause

function writeUrl(push) {
  clearTimeout(typedUrl);
  const url = location.pathname + addressQuery() + location.hash;
  if (url === location.pathname + location.search + location.hash) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  list.refreshLinks(location.search);
}

function readUrl() {
  clearTimeout(typedUrl);
  const p = new URLSearchParams(location.search);
  list.filters.query = p.get('q') || '';
  list.filters.project = p.get('project') || '';
  list.filters.agent = p.get('agent') || '';
  list.filters.host = p.get('host') || '';
  if (search.value !== list.filters.query) search.value = list.filters.query;
  transcripts.changed(list.filters);
  list.refreshLinks(location.search);
  list.refilter();
  const id = p.get('session');
  if (id && id !== view.openKey()) view.openSession(id, { push: false });
  else if (!id && view.openKey()) view.closeSession({ push: false });
}

// -- refresh ---------------------------------------------------------------------------------

async function refresh() {
  if (refreshButton.getAttribute('aria-busy') === 'true') return;
  refreshButton.setAttribute('aria-busy', 'true');
  try {
    await fetchJSON(API + '/refresh', { method: 'POST' });
    // The stream delivers a refresh event; without a stream, read the list ourselves.
    if (!isLive()) store.replaceAll(await fetchJSON(API + '/all'));
  } catch (err) {
    if (err.status === 401 || err.status === 403) showAuthError(err.status);
    else flash('error', `Refresh failed: ${err.message}`);
  } finally {
    refreshButton.setAttribute('aria-busy', 'false');
  }
}

// -- keyboard --------------------------------------------------------------------------------

function onKeyDown(event) {
  const target = event.target;
  const typing = target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
  if (event.key === '/' && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    search.focus();
    search.select();
    return;
  }
  if (event.key === 'Escape') {
    if (target === search && search.value) return; // the search box clears itself
    if (view.openKey()) {
      event.preventDefault();
      view.closeSession({ push: true });
    } else if (target === search) {
      search.blur();
    }
    return;
  }
  const down = event.key === 'ArrowDown' || (!typing && event.key === 'j');
  const up = event.key === 'ArrowUp' || (!typing && event.key === 'k');
  if (!down && !up) return;
  if (target === search) {
    // Down from the search box: the first row (rendered or not: the list is windowed).
    if (down && list.focusFirst()) event.preventDefault();
    return;
  }
  if (!list.isRowLink(target)) return;
  event.preventDefault();
  // Up from the first row goes back to the search box; down from the last stays.
  if (!list.focusNext(target, down ? 1 : -1) && up) search.focus();
}

// -- wiring ----------------------------------------------------------------------------------

function init() {
  const open = (key) => view.openSession(key, { push: true });
  list.filters.query = params.get('q') || '';
  list.filters.project = params.get('project') || '';
  list.filters.agent = params.get('agent') || '';
  list.filters.host = params.get('host') || '';
  search.value = list.filters.query;
  transcripts.changed(list.filters);
  // The hosts first: a change of the known hosts reaches the list before the rows do.
  store.subscribe(hosts.update);
  hosts.subscribe(list.setHosts);
  hosts.subscribe(view.hostsChanged);
  store.subscribe(list.update);
  store.subscribe(notify.update);
  store.subscribe(view.update);
  store.subscribe(transcripts.update);
  list.initList({ open });
  transcripts.initTranscriptSearch({ open: (key, at) => view.openSession(key, { push: true, at }) });
  view.initView({ navigate: writeUrl });
  notify.setupNotifications(open);

  search.addEventListener('input', () => {
    list.filters.query = search.value;
    // The rows' links follow each keystroke; the address once typing pauses (a history
    // call costs milliseconds, and browsers throttle many of them).
    list.refreshLinks(addressQuery());
    list.refilter();
    transcripts.changed(list.filters);
    clearTimeout(typedUrl);
    typedUrl = setTimeout(() => writeUrl(false), 250);
  });
  projectSelect.addEventListener('change', () => {
    list.filters.project = projectSelect.value;
    list.refilter();
    transcripts.changed(list.filters);
    writeUrl(true);
  });
  agentSelect.addEventListener('change', () => {
    list.filters.agent = agentSelect.value;
    list.refilter();
    transcripts.changed(list.filters);
    writeUrl(true);
  });
  hostSelect.addEventListener('change', () => {
    list.filters.host = hostSelect.value;
    list.refilter();
    transcripts.changed(list.filters);
    writeUrl(true);
  });
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    list.focusFirst();
  });
  refreshButton.addEventListener('click', refresh);
  document.addEventListener('keydown', onKeyDown);
  window.addEventListener('popstate', readUrl);
  window.addEventListener('online', reconnectNow);
  setInterval(() => {
    const now = Date.now();
    list.tick(now);
    view.tick(now);
  }, 1000);
  const id = params.get('session');
  if (id) view.openSession(id, { push: false });
  startFeed();
}

// A small surface for tests and the curious; read-only in spirit.
window.helmMonitor = Object.freeze({ maskSecrets, connection: feedInfo });

init();
