/* Tabs: one stream per browser (SPEC section 7). The tabs of one origin elect one holder
 * of the connection with the Web Locks API and relay through a BroadcastChannel, so any
 * number of tabs stay Live over HTTP/1.1 (six connections per host).
 *
 * Election. Every tab queues for the lock NAME; the tab granted it is the holder until it
 * leaves (pagehide, freeze: it gives the lock back) or dies (the browser releases it), and
 * the next tab in the queue takes over at once. A holder that hangs or is frozen without
 * notice keeps the lock: it beats every HEARTBEAT_MS, a follower that heard nothing for
 * SILENT_MS pings it, and with no answer within PING_WAIT_MS shows Connecting (it cannot
 * vouch for the holder's last word) and steals the lock ({steal: true}; whoever gets the
 * lock CANDIDATE does it, not every follower; if none can for FORCE_TICKS or so, each
 * steals at a random moment). A holder whose lock was stolen (its request rejects) or
 * that hears a newer holder stops its connection and follows. Holders are ranked by
 * (term, id): each new holder takes a term above any seen, and messages from a
 * lower-ranked holder are ignored, so a holder that wakes late changes nothing. Only the
 * holder's connection state is relayed (feed.js shows it); a follower that is frozen or
 * leaves gives up its place in the queue, so the lock never goes to a tab that cannot run.
 *
 * Relay (BroadcastChannel messages, {kind, ...}):
 *   hello    {term, id, seq: 0, base, state}     a new holder; base = {term, id, seq}: the
 *                                                 point of the previous holder's relay its
 *                                                 store was at (null: none), where it resumes
 *   msg      {term, id, seq, type, data, eventId} one stream message; eventId is where the
 *                                                 stream stands after it (null after a poll)
 *   beat     {term, id, seq, state}               heartbeat, the holder's connection state
 *                                                 (also on every change, and as a pong)
 *   snapshot {term, id, seq, to, sessions, extras, eventId, state}  the holder's store at seq
 *   bye      {term, id, seq}                      the holder leaves
 *   sync {from}, ping {from}, reconnect {}        from followers
 * A follower applies msg seq n+1 after n. One that is not in step (it just joined, missed
 * a message, or the holder changed and its base is not where the follower stands) buffers
 * what comes and asks for a snapshot; the holder answers from its store, which is exactly
 * at seq (both change in the same task), and the buffered messages above seq follow. A
 * full list (init, refresh, poll) puts a follower in step by itself. BroadcastChannel keeps
 * one sender's order, so nothing is lost or applied twice between a snapshot and its
 * deltas. A new holder resumes the stream with ?lastEventId= from its own store's point.
 */

import { ROOT } from './settings.js';

// The relay's protocol is in the name: pages of another version of it elect among themselves.
const NAME = `helm-monitor stream v1 ${ROOT}`;
const CANDIDATE = `${NAME} takeover`;
const HEARTBEAT_MS = 500;
const SILENT_MS = 800; // no word from the holder for this long: ping it
const PING_WAIT_MS = 200; // no answer for this long: take over
const WATCH_MS = 100;
const SYNC_RETRY_MS = 1000;
const CANDIDATE_HOLD_MS = 500; // the other followers hear the new holder meanwhile
// Unanswered for this many ticks (plus up to as many again, at random: not all at once) and no
// candidate got through (it froze holding CANDIDATE?): steal anyway.
const FORCE_TICKS = 15;
const BUFFER_MAX = 5000;
const FULL = new Set(['init', 'refresh', 'poll']);
const STORED = new Set([...FULL, 'session-created', 'session-updated', 'session-deleted']);

export const tabsSupported = typeof BroadcastChannel === 'function' &&
  Boolean(navigator.locks) && typeof navigator.locks.request === 'function';

const me = typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
const now = () => performance.now();
const rank = (a, b) => (a.term - b.term) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

let hooks = null;
let channel = null;
let role = 'follower';
let away = false; // frozen or hidden in the back/forward cache: hold nothing, queue for nothing
let maxTerm = 0;
// holder
let term = 0;
let seq = 0;
let fresh = false; // our store is a whole list (a snapshot can be answered)
let ownEventId = null;
let holderState = null;
let beatTimer = 0;
let release = null;
let holdToken = 0;
// The last message of each type the store does not keep (host-status, feed-status), as this
// tab applied it, holder or follower: a follower that takes over answers snapshots with them.
const extras = new Map();
// follower
let leader = null; // {term, id, gone}: the holder we follow
let synced = null; // {seq, eventId}: where we stand in its relay; null: we need a snapshot
let remoteState = null;
let buffer = [];
let heard = now();
let pingAt = 0;
let pingTicks = 0;
let forceTicks = FORCE_TICKS;
let unanswered = false;
let syncAskedAt = -Infinity;
let queued = null; // the AbortController of our request waiting in the lock's queue
let requests = 0;
let taking = false;
let candidateRelease = null;

function post(message) {
  try {
    channel.postMessage(message);
  } catch (err) {
    // The channel is closed (the page is going away): nothing to tell.
  }
}

// -- the lock --------------------------------------------------------------------------------

/** Ask for the lock; resolves true once granted (this tab then holds it), false otherwise. */
function acquire(options) {
  const token = ++requests;
  return new Promise((granted) => {
    navigator.locks.request(NAME, options, (lock) => {
      if (!lock || role === 'holder' || away) {
        granted(false);
        return undefined; // given back at once
      }
      return new Promise((done) => {
        release = done;
        holdToken = token;
        granted(true);
        lead();
      });
    }).catch(() => {
      granted(false);
      // Aborted while queued, or stolen while held: only the latter matters.
      if (token === holdToken && role === 'holder') stepDown(false);
    });
  });
}

function queue() {
  if (queued || role === 'holder' || away) return;
  const ac = new AbortController();
  queued = ac;
  acquire({ signal: ac.signal }).then(() => {
    if (queued === ac) queued = null;
  });
}

function dequeue() {
  const ac = queued;
  queued = null;
  if (ac) ac.abort();
}

function lead() {
  dequeue();
  const base = leader && synced ? { term: leader.term, id: leader.id, seq: synced.seq } : null;
  const resumeId = synced ? synced.eventId : null;
  role = 'holder';
  term = maxTerm + 1;
  maxTerm = term;
  seq = 0;
  fresh = Boolean(synced);
  ownEventId = resumeId;
  holderState = null;
  leader = { term, id: me, gone: false };
  synced = null;
  buffer = [];
  pingAt = 0;
  unanswered = false;
  post({ kind: 'hello', term, id: me, seq, base, state: null });
  clearInterval(beatTimer);
  beatTimer = setInterval(beat, HEARTBEAT_MS);
  hooks.lead(resumeId);
}

function stepDown(sayBye) {
  if (role !== 'holder') return;
  if (sayBye) post({ kind: 'bye', term, id: me, seq });
  role = 'follower';
  clearInterval(beatTimer);
  beatTimer = 0;
  const done = release;
  release = null;
  holdToken = 0;
  if (done) done();
  // Our store stands at our own relay's end: a successor that was in step needs no snapshot from us.
  leader = { term, id: me, gone: true };
  synced = fresh ? { seq, eventId: ownEventId } : null;
  remoteState = null;
  heard = now();
  pingAt = 0;
  unanswered = false;
  hooks.follow();
  queue();
  updateView();
}

/** The holder does not answer: one follower (the one that gets CANDIDATE) steals the lock. */
function takeOver(force) {
  if (taking || role !== 'follower' || away) return;
  taking = true;
  const due = () => role === 'follower' && !away && unanswered;
  const attempt = force
    ? (due() ? acquire({ steal: true }) : Promise.resolve(false))
    : navigator.locks.request(CANDIDATE, { ifAvailable: true }, async (lock) => {
      if (!lock || !due()) return;
      if (await acquire({ steal: true })) {
        await new Promise((done) => {
          candidateRelease = done;
          setTimeout(done, CANDIDATE_HOLD_MS);
        });
        candidateRelease = null;
      }
    });
  attempt.catch(() => {}).then(() => {
    taking = false;
  });
}

// -- the holder's side -----------------------------------------------------------------------

function beat() {
  if (role === 'holder') post({ kind: 'beat', term, id: me, seq, state: holderState });
}

function answer(to) {
  if (role !== 'holder' || !fresh) return; // no whole list yet: its first one brings everyone in step
  post({
    kind: 'snapshot', term, id: me, seq, to, eventId: ownEventId, state: holderState,
    sessions: hooks.snapshot(), extras: [...extras],
  });
}

/** The holder got a message from the server: to every other tab. */
function relay(type, data, eventId) {
  if (role !== 'holder') return;
  seq += 1;
  ownEventId = eventId === undefined ? ownEventId : eventId;
  if (FULL.has(type)) fresh = true;
  if (!STORED.has(type)) extras.set(type, data);
  post({ kind: 'msg', term, id: me, seq, type, data, eventId: ownEventId });
}

/** The holder's connection state changed. */
function setState(state) {
  if (role !== 'holder') return;
  holderState = state;
  beat();
}

// -- the followers' side ---------------------------------------------------------------------

function receive(m) {
  if (!m || typeof m !== 'object' || away) return;
  switch (m.kind) {
    case 'sync':
      answer(m.from);
      return;
    case 'ping':
      beat();
      return;
    case 'reconnect':
      if (role === 'holder') hooks.reconnect();
      return;
    case 'hello': case 'msg': case 'beat': case 'snapshot': case 'bye':
      break;
    default:
      return;
  }
  if (typeof m.term !== 'number' || typeof m.id !== 'string' || m.id === me) return;
  if (m.term > maxTerm) maxTerm = m.term;
  if (role === 'holder') {
    if (m.kind === 'bye') return;
    if (rank(m, { term, id: me }) < 0) {
      beat(); // an older holder still talking: it steps down when it hears us
      return;
    }
    stepDown(false); // a newer holder: ours is over
  }
  fromHolder(m);
}

function fromHolder(m) {
  if (leader && rank(m, leader) < 0) return; // a former holder, late
  const hadLeader = Boolean(leader);
  const changed = !leader || rank(m, leader) > 0;
  if (changed) follow(m);
  if (leader.gone) return;
  heard = now();
  pingAt = 0;
  unanswered = false;
  if (m.kind === 'bye') {
    leader.gone = true;
    remoteState = null;
    updateView();
    return;
  }
  if ('state' in m) remoteState = m.state;
  if (m.kind === 'msg') onMsg(m);
  else if (m.kind === 'snapshot') onSnapshot(m);
  let missed = false;
  if (m.kind === 'beat' && synced && m.seq > synced.seq) {
    synced = null; // we missed something
    missed = true;
  }
  // A takeover we were not in step for, or a gap: ask at once (a tab that just joined asked already).
  if (!synced) askSync(missed || (changed && hadLeader));
  updateView();
}

/** A holder ranked above the one we followed. */
function follow(m) {
  const b = m.kind === 'hello' ? m.base : null;
  const inStep = Boolean(b && leader && synced && b.term === leader.term && b.id === leader.id && b.seq === synced.seq);
  leader = { term: m.term, id: m.id, gone: false };
  synced = inStep ? { seq: 0, eventId: synced.eventId } : null;
  buffer = [];
  remoteState = null;
}

function applyMsg(m) {
  hooks.apply(m.type, m.data);
  if (!STORED.has(m.type)) extras.set(m.type, m.data);
  synced = { seq: m.seq, eventId: m.eventId === undefined ? null : m.eventId };
}

function onMsg(m) {
  if (synced && m.seq <= synced.seq) return;
  if (synced && m.seq === synced.seq + 1) {
    applyMsg(m);
  } else if (FULL.has(m.type)) {
    buffer = [];
    applyMsg(m); // a whole list: in step from here
  } else {
    buffer.push(m);
    if (buffer.length > BUFFER_MAX) buffer = [];
    synced = null;
    askSync(false);
  }
}

function onSnapshot(m) {
  // Any snapshot of our holder will do, whoever asked: every tab receives it.
  if (synced && m.seq <= synced.seq) return;
  hooks.replace(m.sessions);
  for (const [type, data] of Array.isArray(m.extras) ? m.extras : []) {
    hooks.apply(type, data);
    extras.set(type, data);
  }
  synced = { seq: m.seq, eventId: m.eventId === undefined ? null : m.eventId };
  const waiting = buffer.sort((a, b) => a.seq - b.seq);
  buffer = [];
  for (const [i, b] of waiting.entries()) {
    if (b.seq <= synced.seq) continue;
    if (b.seq !== synced.seq + 1) {
      buffer = waiting.slice(i); // still a gap: ask again
      synced = null;
      askSync(true);
      return;
    }
    applyMsg(b);
  }
}

function askSync(force) {
  const t = now();
  if (!force && t - syncAskedAt < SYNC_RETRY_MS) return;
  syncAskedAt = t;
  post({ kind: 'sync', from: me });
}

function watch() {
  if (role !== 'follower' || away) return;
  const t = now();
  if (!synced && leader && !leader.gone) askSync(false);
  if (!pingAt) {
    if (t - heard >= SILENT_MS) {
      pingAt = t;
      pingTicks = 0;
      forceTicks = FORCE_TICKS + Math.floor(Math.random() * FORCE_TICKS);
      post({ kind: 'ping', from: me });
    }
    return;
  }
  pingTicks += 1;
  // Two ticks at least: after a freeze of our own, the answer may still be queued behind this tick.
  if (pingTicks < 2 || t - pingAt < PING_WAIT_MS) return;
  if (!unanswered) {
    unanswered = true;
    updateView();
  }
  takeOver(pingTicks >= forceTicks);
}

/** What a follower shows: the holder's state, or Connecting when it cannot vouch for it. */
function view() {
  let hint = '';
  if (!leader || leader.gone) hint = 'Waiting for a tab to take over the event stream';
  else if (unanswered) hint = 'The tab that holds the event stream does not answer';
  else if (!synced) hint = 'Catching up with the tab that holds the event stream';
  else if (!remoteState) hint = 'Waiting for the tab that holds the event stream';
  else return Object.assign({}, remoteState, { hint: `${remoteState.hint} (through another tab)` });
  return {
    word: 'Connecting', hint, attempts: 0, polling: false,
    transport: remoteState ? remoteState.transport : 'sse', alert: remoteState ? remoteState.alert : null,
  };
}

function updateView() {
  if (role === 'follower') hooks.remote(view());
}

// -- the page's life -------------------------------------------------------------------------

function goAway() {
  if (away) return;
  away = true;
  stepDown(true);
  dequeue();
  if (candidateRelease) candidateRelease();
}

function comeBack() {
  if (!away) return;
  away = false;
  heard = now();
  pingAt = 0;
  unanswered = false;
  queue();
  if (!synced) askSync(true);
  updateView();
}

/**
 * hooks: lead(resumeId) this tab holds the stream; follow() it no longer does;
 * apply(type, data) a relayed message; replace(sessions) a snapshot; snapshot() -> sessions;
 * remote(state) what a follower shows; reconnect() a follower asks the holder to try now.
 */
export function startTabs(h) {
  hooks = h;
  channel = new BroadcastChannel(NAME);
  channel.addEventListener('message', (event) => receive(event.data));
  document.addEventListener('freeze', goAway);
  document.addEventListener('resume', comeBack);
  window.addEventListener('pagehide', goAway);
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) comeBack();
  });
  // The holder may be a background tab whose timers the browser slows down (its reconnects
  // with them): a tab the user turns to asks it to try now.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && role === 'follower' && remoteState && remoteState.word !== 'Live') {
      post({ kind: 'reconnect' });
    }
  });
  setInterval(watch, WATCH_MS);
  updateView();
  queue();
  askSync(true);
  return {
    role: () => role,
    relay,
    state: setState,
    askReconnect: () => post({ kind: 'reconnect' }),
  };
}
