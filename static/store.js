/* The session store: every listed session by key, and what each message changed.
 *
 * The feed hands it whole lists (init, refresh, a poll) and deltas; it keeps the
 * Session objects and tells its listeners, once per message, exactly which keys
 * were added, changed or removed, so each view touches only those.
 */

import { keyOf, timeOf } from './format.js';

export const sessions = new Map(); // key -> Session
let received = false; // a first full list arrived
const listeners = [];

/** fn({full, changed: [{key, session, previous}], removed: [{key, session}]}) after every message. */
export function subscribe(fn) {
  listeners.push(fn);
}

export function hasReceived() {
  return received;
}

function valid(session) {
  return Boolean(session) && typeof session.id === 'string';
}

function emit(change) {
  for (const fn of listeners) fn(change);
}

function put(session, changed) {
  const key = keyOf(session);
  const previous = sessions.get(key);
  sessions.set(key, session);
  changed.push({ key, session, previous });
}

/** init / refresh / a poll: the list is the whole truth. */
export function replaceAll(list) {
  const changed = [];
  const removed = [];
  const seen = new Set();
  for (const session of list) {
    if (!valid(session)) continue;
    seen.add(keyOf(session));
    put(session, changed);
  }
  for (const [key, session] of sessions) {
    if (!seen.has(key)) {
      sessions.delete(key);
      removed.push({ key, session });
    }
  }
  received = true;
  emit({ full: true, changed, removed });
}

/** session-created / -updated (deleted = false) or session-deleted (deleted = true). */
export function patch(list, deleted) {
  const changed = [];
  const removed = [];
  for (const session of list) {
    if (!session) continue;
    const key = keyOf(session);
    if (deleted) {
      const known = sessions.get(key);
      if (sessions.delete(key)) removed.push({ key, session: known });
    } else if (valid(session)) {
      put(session, changed);
    }
  }
  emit({ full: false, changed, removed });
}

/** The key of the listed Claude Code session with this id (the most recently updated one). */
export function claudeKeyOf(id) {
  let best = null;
  for (const s of sessions.values()) {
    if (s.id !== id || (s.source && s.source !== 'claude-code')) continue;
    if (!best || timeOf(s.updatedAt) > timeOf(best.updatedAt)) best = s;
  }
  return best ? keyOf(best) : null;
}
