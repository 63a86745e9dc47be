/* The feed: the event stream of SPEC section 4 into the store.

One EventSource; on error it is closed and reopened with exponential backoff and
jitter; after ATTEMPTS_BEFORE_POLLING failed attempts the page polls /all and shows
Polling, and it keeps trying the stream so that it returns to Live when it can.
*/

import {
  API, ATTEMPTS_BEFORE_POLLING, AUTH_RETRY_MS, BACKOFF_BASE_MS, BACKOFF_MAX_MS, POLL_INTERVAL_MS,
} from './settings.js';
import { clearBanner, showAuthError, showBanner } from './banner.js';
import { setAttr, setText } from './dom.js';
import { fetchJSON } from './http.js';
import { patch, replaceAll } from './store.js';

const connectionEl = document.querySelector('[data-connection-status]');

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
  const el = connectionEl;
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

/** The stream delivers what the server holds: a refresh needs no list of its own. */
export function isLive() {
  return Boolean(conn.source) && conn.word === 'Live';
}

/** Try the stream now (the browser is back online). */
export function reconnectNow() {
  if (!conn.source) scheduleReconnect(0);
}

export function feedInfo() {
  return { state: conn.word, attempts: conn.attempts, polling: conn.polling };
}

export const startFeed = connect;
