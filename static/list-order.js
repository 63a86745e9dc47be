/* The list's model: every session as an entry, grouped by project, kept in display order.

Groups (projects) with an active session come first, then the one with the newest
session; within a group, active sessions first, then newest first (ties by id, then
key, so the order is total). Both orders are kept sorted as changes arrive: a change
of one session takes it out of its group's sorted array and puts it back by binary
search, and moves its group the same way if the group's rank changed. A big batch (the
first list, a refresh, a poll) appends first and sorts each touched group once.

The counts the summary shows (per status, agents) are kept here too, adjusted by each
change, so nothing walks every session to count them (hosts.js counts the hosts). No DOM in this module
(shortRow, from list-row.js, only reads the session).
*/

import { projectKey, statusOf, timeOf } from './format.js';
import { invalidate } from './search-index.js';
import { shortRow } from './list-row.js';

/** Batches of more changes than this are appended, then sorted once per touched group. */
const BULK = 64;

export const entries = new Map(); // session key -> entry
export const groups = new Map(); // project key -> group
export const order = []; // the groups, in display order
export const counts = { busy: 0, waiting: 0, idle: 0, ended: 0 };
const sources = new Map(); // agent -> sessions

/** What the last apply() changed beyond rows: the consumer resets these. */
export const changed = { projects: false, sources: false };
/** The keys of the entries that took a new place (the consumer clears it). */
export const moved = new Set();
/** Bumps with every change applied. */
export let version = 0;

export const sourceList = () => [...sources.keys()];

function newEntry(key) {
  return {
    key, session: null, group: null,
    active: false, time: 0, id: '', status: 'ended', short: false, // the sort fields, as placed
    hay: null, hostHay: null, match: false, matchGen: -1, // search-index.js
    index: -1, layoutGen: -1, top: 0, offset: 0, height: 0, // list-window.js: place in the last layout
  };
}

function newGroup(key) {
  return {
    key, members: [], activeCount: 0,
    placed: false, sActive: false, sNewest: 0, // the sort fields, as placed in ``order``
    dirty: false, // bulk: members unsorted
    layoutGen: -1, top: 0, height: 0, shown: 0, shownActive: 0, first: 0, // list-window.js
    dom: null, // list-row.js: its element, once rendered
  };
}

function entryBefore(a, b) {
  if (a.active !== b.active) return a.active;
  if (a.time !== b.time) return a.time > b.time;
  if (a.id !== b.id) return a.id < b.id;
  return a.key < b.key;
}

function groupBefore(a, b) {
  if (a.sActive !== b.sActive) return a.sActive;
  if (a.sNewest !== b.sNewest) return a.sNewest > b.sNewest;
  return a.key < b.key;
}

export const compareEntries = (a, b) => (entryBefore(a, b) ? -1 : entryBefore(b, a) ? 1 : 0);
const compareGroups = (a, b) => (groupBefore(a, b) ? -1 : groupBefore(b, a) ? 1 : 0);

/** The first index whose item does not sort before ``x``. */
function lowerBound(items, x, before) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(items[mid], x)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function removeSorted(items, x, before) {
  let i = lowerBound(items, x, before);
  if (items[i] !== x) i = items.indexOf(x); // not where its fields say: should not happen
  if (i >= 0) items.splice(i, 1);
}

function bump(map, name, by) {
  if (!name) return false;
  const n = (map.get(name) || 0) + by;
  if (n > 0) map.set(name, n);
  else map.delete(name);
  return (by > 0 && n === by) || n <= 0; // appeared or disappeared
}

function countIn(session, by) {
  counts[statusOf(session)] += by;
  if (bump(sources, session.source, by)) changed.sources = true;
}

// -- groups -----------------------------------------------------------------------------

function newestOf(group) {
  const m = group.members;
  let t = m.length ? m[0].time : 0;
  if (group.activeCount > 0 && group.activeCount < m.length) t = Math.max(t, m[group.activeCount].time);
  return t;
}

/** The group's rank may have changed: move it in ``order`` (incremental mode). */
function rerank(group) {
  if (!group.members.length) {
    if (group.placed) removeSorted(order, group, groupBefore);
    groups.delete(group.key);
    changed.projects = true;
    return;
  }
  const active = group.activeCount > 0;
  const newest = newestOf(group);
  if (group.placed && active === group.sActive && newest === group.sNewest) return;
  if (group.placed) removeSorted(order, group, groupBefore);
  group.sActive = active;
  group.sNewest = newest;
  group.placed = true;
  order.splice(lowerBound(order, group, groupBefore), 0, group);
}

function groupFor(key) {
  let group = groups.get(key);
  if (!group) {
    group = newGroup(key);
    groups.set(key, group);
    changed.projects = true;
  }
  return group;
}

// -- entries ----------------------------------------------------------------------------

function detach(entry, dirty) {
  const group = entry.group;
  entry.group = null;
  if (entry.active) group.activeCount -= 1;
  if (dirty) {
    dirty.add(group); // left in members until the group is rebuilt
  } else {
    removeSorted(group.members, entry, entryBefore);
    rerank(group);
  }
}

function attach(entry, group, dirty) {
  entry.group = group;
  if (entry.active) group.activeCount += 1;
  if (dirty) {
    group.members.push(entry);
    dirty.add(group);
  } else {
    group.members.splice(lowerBound(group.members, entry, entryBefore), 0, entry);
    rerank(group);
  }
}

function put(entry, session, dirty) {
  if (entry.session) countIn(entry.session, -1);
  countIn(session, 1);
  entry.session = session;
  entry.status = statusOf(session);
  entry.short = shortRow(session);
  invalidate(entry);
  const project = projectKey(session);
  const active = entry.status !== 'ended';
  const time = timeOf(session.updatedAt);
  const id = String(session.id);
  const sameGroup = entry.group !== null && entry.group.key === project;
  if (sameGroup && entry.active === active && entry.time === time && entry.id === id) return;
  moved.add(entry.key);
  if (sameGroup) {
    // It moves within its group (a batch sorts the group once, at its end).
    const group = entry.group;
    if (!dirty) removeSorted(group.members, entry, entryBefore);
    group.activeCount += Number(active) - Number(entry.active);
    setPlace(entry, active, time, id);
    if (dirty) {
      dirty.add(group);
    } else {
      group.members.splice(lowerBound(group.members, entry, entryBefore), 0, entry);
      rerank(group);
    }
    return;
  }
  if (entry.group) detach(entry, dirty);
  setPlace(entry, active, time, id);
  attach(entry, groupFor(project), dirty);
}

function setPlace(entry, active, time, id) {
  entry.active = active;
  entry.time = time;
  entry.id = id;
}

function remove(entry, dirty) {
  entries.delete(entry.key);
  countIn(entry.session, -1);
  if (entry.group) detach(entry, dirty);
}

/** A store change ({changed: [{key, session, previous}], removed: [{key}]}) applied to the model. */
export function apply(change) {
  version += 1;
  const dirty = change.changed.length + change.removed.length > BULK ? new Set() : null;
  for (const { key } of change.removed) {
    const entry = entries.get(key);
    if (entry) remove(entry, dirty);
  }
  for (const { key, session } of change.changed) {
    let entry = entries.get(key);
    if (!entry) {
      entry = newEntry(key);
      entries.set(key, entry);
    }
    put(entry, session, dirty);
  }
  if (dirty && dirty.size) rebuild(dirty);
}

/** After a bulk batch: each touched group keeps its own members, sorted; the groups re-ranked. */
function rebuild(dirty) {
  for (const group of dirty) {
    const seen = new Set();
    group.members = group.members.filter((e) => e.group === group && !seen.has(e) && seen.add(e));
    group.members.sort(compareEntries);
    if (!group.members.length) {
      groups.delete(group.key);
      changed.projects = true;
    }
  }
  order.length = 0;
  for (const group of groups.values()) {
    group.sActive = group.activeCount > 0;
    group.sNewest = newestOf(group);
    group.placed = true;
    order.push(group);
  }
  order.sort(compareGroups);
}
