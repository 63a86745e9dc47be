/* Full-text hits (SPEC 11): what the search box finds inside transcripts, under the list.

As the reader types (a pause of 250 ms, stale requests aborted), /api/search is asked with
the list's filters (agent, project, host); each hit shows its session, role, time and a
snippet whose matched words are <mark>s built from text nodes (the server sends text and
ranges, never HTML). Activating a hit opens the session view at that message.
*/

import { $, h, setHidden, setText } from './dom.js';
import { absoluteTime, agentLabel, relativeTime, sourceOfKey, timeOf } from './format.js';
import { fetchJSON } from './http.js';
import { maskSecrets } from './mask.js';
import { ROOT } from './settings.js';
import { sessions } from './store.js';

const DEBOUNCE_MS = 250;
const MIN_CHARS = 2;
const LIMIT = 20;
// While the index is still being built, the same search is asked again this often.
const BUILDING_RETRY_MS = 2000;
// After sessions changed, the search shown is asked again this much later.
const LIVE_REFRESH_MS = 1500;

const els = {
  pane: document.querySelector('[data-search-results]'),
  title: $('search-results-title'),
  hits: $('hits'),
};

// The server keeps no index (no cache directory, or the team's web tier): nothing is asked.
let enabled = document.body.dataset.search === 'on';
let timer = 0;
let controller = null;
let asked = '';
let onOpen = () => {};

function snippetNode(text, highlights) {
  const node = h('p', { class: 'hit-snippet' });
  let at = 0;
  const marks = (Array.isArray(highlights) ? highlights : [])
    .filter((r) => Array.isArray(r) && r[0] >= at && r[1] > r[0])
    .sort((a, b) => a[0] - b[0]);
  for (const [start, end] of marks) {
    if (start < at) continue;
    node.append(document.createTextNode(maskSecrets(text.slice(at, start))));
    node.append(h('mark', null, maskSecrets(text.slice(start, end))));
    at = end;
  }
  node.append(document.createTextNode(maskSecrets(text.slice(at))));
  return node;
}

function hitNode(hit) {
  const session = sessions.get(hit.key);
  const title = maskSecrets((session && session.title) || 'Untitled session');
  const when = timeOf(hit.timestamp);
  const button = h('button', { type: 'button', class: 'hit-open' },
    h('span', { class: 'hit-title' }, title),
    h('span', { class: 'hit-meta' },
      `${agentLabel((session && session.source) || sourceOfKey(hit.key))} · ${hit.role === 'assistant' ? 'reply' : 'prompt'}` +
      (when ? ` · ${relativeTime(when, Date.now())}` : '')),
    snippetNode(String(hit.snippet || ''), hit.highlights));
  if (when) button.title = absoluteTime(when);
  button.addEventListener('click', () => onOpen(hit.key, hit.messageIndex));
  return h('li', { class: 'hit', 'data-hit': '', 'data-session-key': hit.key, 'data-message-index': String(hit.messageIndex) },
    button);
}

function show(answer, query) {
  const hits = Array.isArray(answer.hits) ? answer.hits : [];
  const total = Number(answer.total) || 0;
  const count = answer.totalCapped ? `${total}+` : String(total);
  setText(els.title, hits.length
    ? `Found in transcripts: ${count} message${total === 1 ? '' : 's'}${answer.indexing ? ' (indexing…)' : ''}`
    : `Nothing in the transcripts matches “${query}”${answer.indexing ? ' yet (indexing…)' : ''}`);
  els.hits.replaceChildren(...hits.map(hitNode));
  setHidden(els.pane, false);
}

function clear() {
  if (controller) controller.abort();
  controller = null;
  asked = '';
  els.hits.replaceChildren();
  setHidden(els.pane, true);
}

async function run(query, filters) {
  const p = new URLSearchParams({ q: query, limit: String(LIMIT) });
  if (filters.agent) p.set('source', filters.agent);
  if (filters.project) p.set('project', filters.project);
  if (filters.host) p.set('host', filters.host);
  const key = p.toString();
  if (key === asked) return;
  asked = key;
  if (controller) controller.abort();
  controller = new AbortController();
  const mine = controller;
  try {
    const answer = await fetchJSON(`${ROOT}api/search?${key}`, { signal: mine.signal });
    if (mine !== controller) return;
    show(answer, query);
    if (answer.indexing) retry(query, filters);
  } catch (err) {
    if (mine !== controller || err.name === 'AbortError') return;
    asked = '';
    if (err.status === 501) enabled = false; // turned off since the page was served
    if (err.status === 503) retry(query, filters);
    // Off here (501), or being built (503): say so once, quietly.
    setText(els.title, err.status === 501 ? '' : `Transcript search: ${err.message}`);
    els.hits.replaceChildren();
    setHidden(els.pane, err.status === 501);
  }
}

function retry(query, filters) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    asked = '';
    run(query, filters);
  }, BUILDING_RETRY_MS);
}

/** The search box or a filter changed: ask again once typing pauses. */
export function changed(filters) {
  clearTimeout(timer);
  const query = (filters.query || '').trim();
  if (!enabled || query.length < MIN_CHARS) {
    current = null;
    clear();
    return;
  }
  current = filters;
  timer = setTimeout(() => run(query, filters), DEBOUNCE_MS);
}

/** A store change: sessions were written, so the hits shown may be out of date. Asked again
 * once things settle (the indexer follows the files about a second behind). */
let current = null; // the filters of the search shown
let stale = 0;
export function update() {
  if (!current || els.pane.hidden || stale) return;
  stale = setTimeout(() => {
    stale = 0;
    if (!current || els.pane.hidden) return;
    asked = '';
    run((current.query || '').trim(), current);
  }, LIVE_REFRESH_MS);
}

/** open(key, messageIndex): a hit was activated. */
export function initTranscriptSearch({ open }) {
  onOpen = open;
}
