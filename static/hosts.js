/* The hosts and the shared engine (SPEC sections 4, 7 and 9): what the page knows of them,
and the two things it shows of them: a strip with each host's state, and a banner while the
engine is unreachable.

Hosts are known from the server's host-status messages (every host the engine has heard
from, online or not) and from the sessions' host fields (a poll of /all, or a server that
sends no host-status, names no other): a host only sessions name is online unless every one
of its sessions is stale. With one host online the strip stays hidden (its element is there
for the hook) and nothing of this shows: the single dashboard looks as it always did.

Neither message carries an event id, so neither moves where the stream resumes
(transport.js stores only ids that are there). Both are re-sent after every init, refresh
or replay, and relayed to the other tabs like any message (tabs.js keeps the last of each
for a tab that joins).
*/

import { $, h, setAttr, setHidden, setText } from './dom.js';
import { agentLabel, absoluteTime, plural } from './format.js';

const els = { strip: $('hosts'), feed: document.querySelector('[data-feed-status]') };

let reported = null; // host -> {online, lastSeen, sessions, sources}: the last host-status; null: none yet
const counted = new Map(); // host -> {sessions, stale}: what the store lists
const pills = new Map(); // host -> its element in the strip
const listeners = [];
let known = { names: [], offline: new Set() };
let signature = '';
let feedDown = null; // epoch ms the data is as of while the engine is unreachable; null: it is not

/** fn({names, offline}) whenever the known hosts or their states change. */
export function subscribe(fn) {
  listeners.push(fn);
}

/** More than one host is known: the page names each row's host. */
export const manyHosts = () => known.names.length > 1;

/** The host is known to be offline (its sessions are stale even before they say so). */
export const isOffline = (host) => Boolean(host) && known.offline.has(host);

function count(session, by) {
  const host = session && session.host;
  if (!host) return;
  const c = counted.get(host) || { sessions: 0, stale: 0 };
  c.sessions += by;
  if (session.stale) c.stale += by;
  if (c.sessions > 0) counted.set(host, c);
  else counted.delete(host);
}

/** A store change (store.subscribe). */
export function update(change) {
  for (const { session } of change.removed) count(session, -1);
  for (const { session, previous } of change.changed) {
    if (previous) count(previous, -1);
    count(session, 1);
  }
  recompute();
}

/** A host-status message: {hosts: [{host, online, lastSeen, sessions, sources}]}. */
export function setHostStatus(data) {
  const list = data && Array.isArray(data.hosts) ? data.hosts : [];
  reported = new Map();
  for (const entry of list) {
    if (!entry || typeof entry.host !== 'string' || !entry.host) continue;
    reported.set(entry.host, {
      online: entry.online !== false,
      lastSeen: Number(entry.lastSeen) || 0,
      sessions: Number(entry.sessions) || 0,
      sources: Array.isArray(entry.sources) ? entry.sources : [],
    });
  }
  recompute();
}

/** Every known host with its state: the report first, then hosts only sessions name. */
function states() {
  const all = new Map();
  if (reported) for (const [name, r] of reported) all.set(name, r);
  for (const [name, c] of counted) {
    if (!all.has(name)) all.set(name, { online: c.stale < c.sessions, lastSeen: 0, sessions: c.sessions, sources: [] });
  }
  return all;
}

function recompute() {
  const all = states();
  const names = [...all.keys()].sort();
  const offline = new Set(names.filter((name) => !all.get(name).online));
  renderStrip(names, all, offline);
  const sig = names.map((name) => `${name}${offline.has(name) ? '-' : '+'}`).join(' ');
  if (sig === signature) return;
  signature = sig;
  known = { names, offline };
  for (const fn of listeners) fn(known);
}

/** "12:03:10" today, the date too otherwise. */
function clock(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function renderStrip(names, all, offline) {
  for (const [name, el] of pills) {
    if (!all.has(name)) {
      el.remove();
      pills.delete(name);
    }
  }
  let cursor = els.strip.firstElementChild;
  for (const name of names) {
    const r = all.get(name);
    let el = pills.get(name);
    if (!el) {
      el = h('span', { class: 'host', 'data-host-status': name },
        h('span', { class: 'host-dot', 'aria-hidden': 'true' }), h('span', { class: 'host-name' }, name),
        h('span', { class: 'host-note' }));
      pills.set(name, el);
    }
    const down = offline.has(name);
    setAttr(el, 'data-state', down ? 'offline' : 'online');
    setText(el.lastChild, down ? (r.lastSeen ? `offline since ${clock(r.lastSeen)}` : 'offline') : '');
    const what = [plural(r.sessions, 'session'), r.sources.map(agentLabel).join(', ')].filter(Boolean).join(' · ');
    setAttr(el, 'title', down
      ? `${name} is offline${r.lastSeen ? ` since ${absoluteTime(r.lastSeen)}` : ''}: its sessions stay listed, dimmed, as last heard (${what})`
      : `${name} is online (${what})`);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else els.strip.insertBefore(el, cursor);
  }
  setHidden(els.strip, names.length < 2 && offline.size === 0);
}

/** A feed-status message: {ok, since}: whether the server reaches the shared engine. */
export function setFeedStatus(data) {
  const ok = !data || data.ok !== false;
  if (ok) {
    feedDown = null;
  } else {
    const since = Number(data.since);
    feedDown = Number.isFinite(since) && since > 0 ? since : (feedDown || Date.now());
    setText(els.feed, `Live updates paused — data as of ${clock(feedDown)}`);
    setAttr(els.feed, 'title', 'The server cannot reach the team’s shared engine: it shows what it had then, ' +
      'and catches up by itself when the engine is back.');
  }
  setAttr(els.feed, 'data-state', ok ? 'ok' : 'down');
  setHidden(els.feed, ok);
}
