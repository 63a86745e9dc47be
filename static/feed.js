/* The feed: what the server says, into this tab's store (SPEC sections 4, 7 and 12).

One stream per browser, not per tab: the tabs elect one holder (tabs.js), which runs the
connection (transport.js: the event stream with backoff, else the WebSocket, else polling
/all, back to the event stream when it can) and relays every message to the other tabs;
each tab applies them to its own store. Every tab's indicator tells the holder's state
(Live / Polling / Connecting), and Connecting when it cannot vouch for it; only the
holder raises desktop notifications. Where Web Locks or BroadcastChannel are missing,
each tab holds its own connection. The status messages (host-status, feed-status: no event
id) go to hosts.js the same way, relayed or not.
*/

import { clearBanner, showAuthError, showBanner } from './banner.js';
import { setAttr, setText } from './dom.js';
import { setFeedStatus, setHostStatus } from './hosts.js';
import { setLeading } from './notify.js';
import { patch, replaceAll, sessions } from './store.js';
import { startTabs, tabsSupported } from './tabs.js';
import {
  initTransport, reconnectTransport, startTransport, stopTransport, transportInfo, transportLive,
} from './transport.js';

const connectionEl = document.querySelector('[data-connection-status]');

let role = tabsSupported ? 'follower' : 'holder';
let tabs = null;
let shown = transportInfo();
let shownAlert = null;

/** One message (the stream's, a poll's, or relayed by the holder) into the store. */
function apply(type, data) {
  const list = Array.isArray(data && data.sessions) ? data.sessions : [];
  switch (type) {
    case 'init':
    case 'refresh':
    case 'poll':
      replaceAll(list);
      break;
    case 'session-created':
    case 'session-updated':
      patch(list, false);
      break;
    case 'session-deleted':
      patch(list, true);
      break;
    case 'host-status':
      setHostStatus(data);
      break;
    case 'feed-status':
      setFeedStatus(data);
      break;
    default:
      break; // keepalive, and anything a newer server may say
  }
}

function renderAlert(alert) {
  if (alert === shownAlert) return;
  shownAlert = alert;
  if (alert === 401 || alert === 403) {
    showAuthError(alert);
  } else if (alert === 'offline') {
    showBanner('offline', 'The server is not answering. Showing the last known state; retrying…');
  } else {
    clearBanner('auth');
    clearBanner('offline');
  }
}

function render(state) {
  shown = state;
  setText(connectionEl, state.word);
  setAttr(connectionEl, 'data-state', state.word.toLowerCase());
  if (state.hint) setAttr(connectionEl, 'title', state.hint);
  renderAlert(state.alert === undefined ? null : state.alert);
}

initTransport({
  message(type, data, eventId) {
    if (type === 'keepalive') return;
    if (tabs) tabs.relay(type, data, eventId); // the others first: they work while we do
    apply(type, data);
  },
  state(state) {
    if (role === 'holder') render(state);
    if (tabs) tabs.state(state);
  },
});

export function startFeed() {
  if (!tabsSupported) {
    setLeading(true);
    startTransport(null);
    return;
  }
  setLeading(false);
  tabs = startTabs({
    lead(resumeId) {
      role = 'holder';
      setLeading(true);
      startTransport(resumeId);
    },
    follow() {
      role = 'follower';
      setLeading(false);
      stopTransport();
    },
    apply,
    replace(list) {
      replaceAll(Array.isArray(list) ? list : []);
    },
    snapshot() {
      return [...sessions.values()];
    },
    remote(state) {
      if (role === 'follower') render(state);
    },
    reconnect: reconnectTransport,
  });
}

/** The stream delivers what the server holds: a refresh needs no list of its own. */
export function isLive() {
  return role === 'holder' ? transportLive() : shown.word === 'Live';
}

/** Try the stream now (the browser is back online). */
export function reconnectNow() {
  if (role === 'holder') reconnectTransport();
  else if (tabs) tabs.askReconnect();
}

export function feedInfo() {
  return {
    state: shown.word, attempts: shown.attempts, polling: shown.polling, role, transport: shown.transport,
  };
}
