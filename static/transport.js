/* The connection of the tab that holds the stream (SPEC sections 4, 7 and 12).
 *
 * The event stream first (sse.js). On error it is closed and reopened with exponential
 * backoff and jitter. After ATTEMPTS_BEFORE_POLLING failed attempts (at once when it
 * never opened at all and an attempt hangs: a proxy that holds the answer back) it reads
 * /all once: if the server answers, it tries the WebSocket (ws.js) and is Live over it if
 * it opens; if the server does not answer, refuses us, or the WebSocket fails too, it
 * polls /all and shows Polling. Meanwhile it keeps trying the event stream (backoff) and,
 * while polls succeed, the WebSocket (its own backoff), and moves back to the event
 * stream as soon as that opens.
 *
 * Every connection resumes where the last message left off (?lastEventId=: a new
 * EventSource or WebSocket cannot send Last-Event-ID); after a poll, whose list carries
 * no event id, the next one starts over with init. A poll reads /api/hosts too, handed on
 * as a host-status message (the stream would have sent one); status messages carry no id
 * and never move lastEventId.
 *
 * initTransport({message(type, data, lastEventId), state(info)}) once; then
 * startTransport(resumeId) / stopTransport() as this tab takes or leaves the stream.
 */

import {
  API, ATTEMPTS_BEFORE_POLLING, AUTH_RETRY_MS, BACKOFF_BASE_MS, BACKOFF_MAX_MS, POLL_INTERVAL_MS, ROOT,
} from './settings.js';
import { fetchJSON } from './http.js';
import { openEventStream } from './sse.js';
import { openWebSocket, webSocketURL, wsSupported } from './ws.js';

// A connection not open by then has failed (10 s by default; 1 s in tests' ?backoff=50).
const OPEN_TIMEOUT_MS = Math.min(10000, Math.max(1000, BACKOFF_BASE_MS * 10));
// Open this long without a message (a resume with nothing missed): the failures are over.
const STABLE_MS = 1000;

let hooks = { message() {}, state() {} };

const c = {
  running: false,
  lastEventId: null,
  lastList: null, // the last poll's list (JSON): the same list again is not handed on
  everOpened: false, // the event stream opened once since the page loaded
  // the event stream
  sse: null,
  sseOpen: false,
  sseGotThrough: false, // the last attempt that failed had opened: the server, not a proxy, ended it
  attempts: 0,
  sseTimer: 0,
  sseOpenTimer: 0,
  sseStableTimer: 0,
  // the WebSocket
  ws: null,
  wsOpen: false,
  wsFailures: 0,
  wsNextAt: 0, // no new WebSocket before then (its backoff)
  wsOpenTimer: 0,
  wsStableTimer: 0,
  // polling, and the one look at /all that decides between the WebSocket and polling
  probing: false,
  probeRun: 0,
  polling: false,
  pollFailed: false,
  pollTimer: 0,
  pollRun: 0,
  hostsMissing: false, // the server has no /api/hosts (an older one): polls do not ask again
  // what it shows
  word: 'Connecting',
  hint: 'Connecting to the event stream',
  alert: null, // null, 'offline', 401 or 403
};

export function initTransport(h) {
  hooks = h;
}

function transportName() {
  if (c.sseOpen) return 'sse';
  if (c.wsOpen) return 'ws';
  return c.polling ? 'poll' : 'sse';
}

export function transportInfo() {
  return {
    word: c.word, hint: c.hint, attempts: c.attempts, polling: c.polling, transport: transportName(), alert: c.alert,
  };
}

function emit() {
  hooks.state(transportInfo());
}

function show(word, hint) {
  c.word = word;
  c.hint = hint;
  emit();
}

function setAlert(alert) {
  if (c.alert === alert) return;
  c.alert = alert;
  emit();
}

function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  // Equal jitter: never less than half the ceiling, so many browsers do not retry in step.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function resuming(path) {
  return c.lastEventId ? `${path}?lastEventId=${encodeURIComponent(c.lastEventId)}` : path;
}

/** A message from either transport: note where it leaves the stream, hand it on. */
function received(type, data, id) {
  if (id) c.lastEventId = id;
  c.lastList = null;
  hooks.message(type, data, c.lastEventId);
}

// -- the event stream ------------------------------------------------------------------------

function connectSSE() {
  clearTimeout(c.sseTimer);
  c.sseTimer = 0;
  if (!c.running || c.sse) return;
  if (!c.polling && !c.wsOpen) {
    show('Connecting', c.attempts ? `Reconnecting (attempt ${c.attempts + 1})` : 'Connecting to the event stream');
  }
  const handle = openEventStream(resuming(API + '/stream'), {
    open() {
      clearTimeout(c.sseOpenTimer);
      c.sseOpen = true;
      c.everOpened = true;
      stopWS();
      c.wsFailures = 0;
      c.wsNextAt = 0;
      c.probing = false;
      c.probeRun += 1;
      stopPolling();
      c.alert = null;
      clearTimeout(c.sseStableTimer);
      c.sseStableTimer = setTimeout(() => {
        if (c.sseOpen && c.attempts) {
          c.attempts = 0;
          emit();
        }
      }, STABLE_MS);
      show('Live', 'Receiving live updates');
    },
    message(type, data, id) {
      if (c.attempts) {
        c.attempts = 0; // it delivers: the failures are over
        emit();
      }
      received(type, data, id);
    },
    fail() {
      sseFailed(false);
    },
  });
  c.sse = handle;
  clearTimeout(c.sseOpenTimer);
  c.sseOpenTimer = setTimeout(() => {
    if (c.sse !== handle || c.sseOpen) return;
    handle.close();
    sseFailed(true);
  }, OPEN_TIMEOUT_MS);
}

function sseFailed(hung) {
  clearTimeout(c.sseOpenTimer);
  clearTimeout(c.sseStableTimer);
  c.sseGotThrough = c.sseOpen;
  c.sse = null;
  c.sseOpen = false;
  c.attempts += 1;
  if (hung && !c.everOpened) c.attempts = Math.max(c.attempts, ATTEMPTS_BEFORE_POLLING);
  if (c.attempts >= ATTEMPTS_BEFORE_POLLING) fallBack();
  else if (!c.wsOpen && !c.polling) show('Connecting', `Reconnecting (attempt ${c.attempts + 1})`);
  else emit();
  scheduleSSE(backoffDelay(c.attempts));
}

function scheduleSSE(delay) {
  clearTimeout(c.sseTimer);
  c.sseTimer = setTimeout(connectSSE, delay);
}

// -- the fallbacks: the WebSocket, then polling ----------------------------------------------
//
// The WebSocket is tried only when the event stream does not get through (it fails before it
// opens) and /all answers: a proxy in the way, which the WebSocket may pass. When the server is
// down, refuses us (401, 403), or opens the stream and ends it (it is stopping), the WebSocket
// would fail the same way, and polling says why.

/** The event stream failed ATTEMPTS_BEFORE_POLLING times (or more). */
function fallBack() {
  if (c.wsOpen || c.ws || c.polling || c.probing) {
    emit(); // the poll loop tries the WebSocket again in time
    return;
  }
  if (c.sseGotThrough) {
    startPolling(); // the stream opened and the server ended it (it is stopping): not a proxy's doing
    return;
  }
  c.probing = true;
  const run = ++c.probeRun;
  fetchJSON(API + '/all').then((list) => {
    if (run !== c.probeRun) return;
    c.probing = false;
    if (!c.running || c.sseOpen) return;
    gotList(list);
    if (wsSupported) connectWS();
    else startPolling();
  }, (err) => {
    if (run !== c.probeRun) return;
    c.probing = false;
    if (c.running && !c.sseOpen) startPolling(err);
  });
}

function connectWS() {
  if (!c.running || c.ws || c.sseOpen) return;
  const handle = openWebSocket(webSocketURL(resuming(API + '/ws')), {
    open() {
      clearTimeout(c.wsOpenTimer);
      c.wsOpen = true;
      stopPolling();
      c.alert = null;
      clearTimeout(c.wsStableTimer);
      c.wsStableTimer = setTimeout(() => {
        if (c.wsOpen) c.wsFailures = 0;
      }, STABLE_MS);
      show('Live', 'Receiving live updates over WebSocket (the event stream does not get through)');
    },
    message(type, data, id) {
      c.wsFailures = 0;
      received(type, data, id);
    },
    fail() {
      wsFailed();
    },
  });
  c.ws = handle;
  clearTimeout(c.wsOpenTimer);
  c.wsOpenTimer = setTimeout(() => {
    if (c.ws !== handle || c.wsOpen) return;
    handle.close();
    wsFailed();
  }, OPEN_TIMEOUT_MS);
}

function wsFailed() {
  clearTimeout(c.wsOpenTimer);
  clearTimeout(c.wsStableTimer);
  c.ws = null;
  c.wsOpen = false;
  c.wsFailures += 1;
  c.wsNextAt = performance.now() + backoffDelay(c.wsFailures);
  if (c.running && !c.sseOpen) startPolling();
}

function stopWS() {
  clearTimeout(c.wsOpenTimer);
  clearTimeout(c.wsStableTimer);
  if (c.ws) c.ws.close();
  c.ws = null;
  c.wsOpen = false;
}

/** Poll /all; ``failure``: the error of the list fetched just now (poll again in a while). */
function startPolling(failure) {
  if (c.polling) return;
  c.polling = true;
  c.pollFailed = false;
  show('Polling', `The event stream is unavailable; checking every ${Math.round(POLL_INTERVAL_MS / 100) / 10} s`);
  if (failure) schedulePoll(listFailed(failure));
  else poll();
}

function stopPolling() {
  c.polling = false;
  c.pollRun += 1; // an answer still on its way is dropped
  clearTimeout(c.pollTimer);
  c.pollTimer = 0;
}

function schedulePoll(delay) {
  clearTimeout(c.pollTimer);
  c.pollTimer = setTimeout(poll, delay);
}

/** A whole list from /all: the store takes it; it is at no event, so the next stream starts with init. */
function gotList(list) {
  setAlert(null);
  const sessions = Array.isArray(list) ? list : [];
  const text = JSON.stringify(sessions);
  if (c.lastEventId === null && text === c.lastList) return; // nothing changed since the last poll
  c.lastList = text;
  c.lastEventId = null;
  hooks.message('poll', { type: 'poll', sessions }, null);
}

/** /all failed: say why; the delay before the next poll. */
function listFailed(err) {
  c.pollFailed = true;
  if (err.status === 401 || err.status === 403) {
    setAlert(err.status);
    return Math.max(POLL_INTERVAL_MS, AUTH_RETRY_MS);
  }
  setAlert('offline');
  return POLL_INTERVAL_MS;
}

/** While polling, the hosts' states from /api/hosts, as the stream's host-status would say them. */
async function pollHosts(current) {
  if (c.hostsMissing) return;
  try {
    const hosts = await fetchJSON(ROOT + 'api/hosts');
    if (current() && Array.isArray(hosts)) hooks.message('host-status', { type: 'host-status', hosts }, c.lastEventId);
  } catch (err) {
    if (err.status === 404) c.hostsMissing = true;
  }
}

async function poll() {
  if (!c.polling) return;
  const run = c.pollRun;
  const current = () => c.polling && c.pollRun === run;
  let next = POLL_INTERVAL_MS;
  try {
    const list = await fetchJSON(API + '/all');
    if (!current()) return;
    gotList(list);
    await pollHosts(current);
    if (!current()) return;
    if (c.pollFailed && !c.sse) {
      // The server is back: try the stream now rather than at the end of a long backoff.
      c.attempts = Math.min(c.attempts, ATTEMPTS_BEFORE_POLLING);
      scheduleSSE(0);
    } else if (wsSupported && !c.ws && !c.sseGotThrough && c.attempts >= ATTEMPTS_BEFORE_POLLING &&
               performance.now() >= c.wsNextAt) {
      connectWS(); // the server answers, its event stream still does not: the WebSocket again
    }
    c.pollFailed = false;
  } catch (err) {
    if (!current()) return;
    next = listFailed(err);
  }
  if (current()) schedulePoll(next);
}

// -- the tab takes or leaves the stream ------------------------------------------------------

export function startTransport(resumeId) {
  if (c.running) return;
  c.running = true;
  c.lastEventId = resumeId || null;
  c.lastList = null;
  c.attempts = 0;
  c.wsFailures = 0;
  c.wsNextAt = 0;
  c.alert = null;
  connectSSE();
}

export function stopTransport() {
  c.running = false;
  clearTimeout(c.sseTimer);
  clearTimeout(c.sseOpenTimer);
  clearTimeout(c.sseStableTimer);
  c.sseTimer = 0;
  if (c.sse) c.sse.close();
  c.sse = null;
  c.sseOpen = false;
  stopWS();
  stopPolling();
  c.probing = false;
  c.probeRun += 1;
  c.word = 'Connecting';
  c.hint = 'Connecting to the event stream';
}

/** A transport is open and delivering. */
export function transportLive() {
  return c.running && (c.sseOpen || c.wsOpen) && c.word === 'Live';
}

/** Try the event stream now (the browser is back online, or another tab asked). */
export function reconnectTransport() {
  if (c.running && !c.sse) scheduleSSE(0);
}
