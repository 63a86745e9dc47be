/* The session list: rows grouped by project, newest first, active ones on top.

It stays fast with tens of thousands of sessions by doing per change only what that
change needs:
- list-order.js keeps the model (entries in sorted groups, the counts) up to date by
  binary search, so a change of one session moves one entry;
- search-index.js filters by a cached, lower-cased text per session;
- list-controls.js renders the summary, the empty state and the filters' options from
  the model's counts;
- list-window.js places every shown row and header (one pass of additions) and says
  which ones are near the viewport; only those exist in the DOM (list-row.js builds
  them), in a container as tall as the whole list, so the page scrolls naturally.

Store changes are laid out once per animation frame (a burst costs one layout), a filter
change at once (a keystroke's work is done while its frame is awaited). A row that stays
on screen keeps its element (and its text, unless its session changed); rows that leave
the window go back to a pool and are reused for the rows that enter it. The focused row
is kept in the DOM wherever it is, and focus survives every update. Keyboard navigation
walks the whole shown sequence (focusFirst, focusNext), scrolling rows into view.
*/

import { $, setAttr, setHidden, setText } from './dom.js';
import { relativeTime, statusOf } from './format.js';
import * as controls from './list-controls.js';
import * as model from './list-order.js';
import { createGroup, createRow, fillGroupCounts, fillRow, pulse, resetRow } from './list-row.js';
import { groupsIn, layout, readGeometry, rowsIn, sameGeometry, scrollerOf, viewport } from './list-window.js';
import { Filter, prepare } from './search-index.js';
import { hasReceived } from './store.js';

/** What the list shows: the search words, one project, one agent, one host (all kept in the address). */
export const filters = { query: '', project: '', agent: '', host: '' };

/** Rendered beyond the viewport, above and below (px): scrolling finds rows ready. */
const OVERSCAN = 480;
/** Up to this many sessions the list is rendered whole, the rows the filters leave out
 * hidden: there is nothing to save, and find-in-page sees every row. */
const WHOLE_LIST_ROWS = 150;

const filter = new Filter();
let geometry = null; // the heights in effect (list-window.readGeometry)
let lay = { gen: 0, rows: [], groups: [], height: 0 }; // the shown sequence, placed
let laidOut = { version: -1, filterGen: -1 }; // what lay was built from
let layoutGen = 0;
let dirty = true; // the model or the filter changed: lay must be rebuilt
let frame = 0; // a render is scheduled for the next animation frame
let fallback = 0; // ... or for this timer, whichever comes first
let fillGen = 0; // bumps when every rendered row must be written again
let manyHosts = false; // more than one host is known (hosts.js): rows name their host
let hostNames = []; // every known host, for the host filter
let offlineHosts = new Set(); // hosts known to be offline: their rows are stale
let selectedKey = null;
let revealKey = null; // a row just selected: scrolled into view once it is listed
let onOpen = () => {};

const rendered = new Map(); // session key -> row in the DOM
const pool = []; // rows out of the DOM, ready for reuse
const attached = new Set(); // groups whose element is in the DOM
const pulses = new Set(); // keys whose rows flash when next rendered

const els = { pane: $('sessions'), groups: $('groups') };

let linkQuery = location.search; // the address the rows' links keep (app.js: refreshLinks)

/** href(key): a row's link, the address with the session set (the other parameters kept). */
function sessionHrefs() {
  const p = new URLSearchParams(linkQuery);
  return (key) => {
    p.set('session', key);
    return '?' + p.toString();
  };
}

const fillContext = () => ({ manyHosts, offline: offlineHosts, selectedKey, href: sessionHrefs(), gen: fillGen });

/** open(key): a row was clicked. */
export function initList({ open }) {
  onOpen = open;
  // Scrolling the document, or the list pane while it scrolls by itself, moves the window.
  document.addEventListener('scroll', (event) => {
    if (event.target === document || event.target === els.pane) schedule();
  }, { capture: true, passive: true });
  window.addEventListener('resize', schedule);
  // Opening or closing a session resizes the pane (and may change the row heights).
  if (window.ResizeObserver) new ResizeObserver(schedule).observe(els.pane);
  renderProjectOptions();
  renderAgentOptions();
  renderHostOptions();
  applyFilters();
  renderSummary();
  render();
}

/** The known hosts changed (hosts.js): the host chips, the stale rows and the host filter follow. */
export function setHosts({ names, offline }) {
  const many = names.length > 1;
  const sameOffline = offline.size === offlineHosts.size && [...offline].every((h) => offlineHosts.has(h));
  hostNames = names;
  if (many !== manyHosts || !sameOffline) {
    manyHosts = many;
    offlineHosts = offline;
    fillGen += 1; // every rendered row is written again
    schedule();
  }
  renderHostOptions();
  applyFilters();
}

/** A store change: update the model and the counts now, lay the rows out next frame. */
export function update(change) {
  model.apply(change);
  for (const { key, session, previous } of change.changed) {
    if (previous && (previous.messageCount !== session.messageCount || statusOf(previous) !== statusOf(session))) {
      pulses.add(key);
    }
  }
  if (model.changed.projects) {
    model.changed.projects = false;
    renderProjectOptions();
  }
  if (model.changed.sources) {
    model.changed.sources = false;
    renderAgentOptions();
  }
  applyFilters();
  renderSummary();
  invalidate();
  prepareSearch();
}

/** In idle time, build the search text of the sessions that have none (search-index.js). */
let preparing = 0;
function prepareSearch() {
  if (preparing || typeof requestIdleCallback !== 'function') return;
  const pending = model.entries.values();
  const step = (deadline) => {
    // Short slices: a keystroke arriving meanwhile waits for this one to end.
    const end = performance.now() + 8;
    while (deadline.timeRemaining() > 1 && performance.now() < end) {
      for (let n = 0; n < 256; n++) {
        const next = pending.next();
        if (next.done) {
          preparing = 0;
          return;
        }
        prepare(next.value);
      }
    }
    preparing = requestIdleCallback(step);
  };
  preparing = requestIdleCallback(step);
}

function invalidate() {
  dirty = true;
  schedule();
}

/** Render in the next animation frame; a tab in the background has none: a timer then. */
function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(flush);
  fallback = setTimeout(flush, 100);
}

/** Bring the DOM up to date now (keyboard navigation cannot wait for the frame). */
function flush() {
  if (frame) {
    cancelAnimationFrame(frame);
    clearTimeout(fallback);
    frame = 0;
  }
  render();
}

// -- rendering --------------------------------------------------------------------------

const rowKeyOf = (el) => {
  const row = el && el.closest ? el.closest('.row') : null;
  return row ? row.getAttribute('data-session-key') : null;
};

/** The shown entry of ``key`` in the current layout, or null. */
function shownEntry(key) {
  const entry = key ? model.entries.get(key) : null;
  return entry && entry.layoutGen === lay.gen ? entry : null;
}

/** Lay the list out again; the first row in view stays where it was on screen. */
function relayout() {
  const anchor = anchorRow();
  layoutGen += 1;
  // A query that only narrows the last one: only the rows shown now can still match.
  const narrowed = filter.narrowing && laidOut.filterGen === filter.gen - 1 && laidOut.version === model.version;
  lay = layout(model.order, filter, geometry, layoutGen, narrowed ? lay.rows : null);
  laidOut = { version: model.version, filterGen: filter.gen };
  dirty = false;
  model.moved.clear();
  els.groups.style.height = `${lay.height}px`;
  if (anchor) {
    const entry = shownEntry(anchor.key);
    const delta = entry ? entry.top - anchor.top : 0;
    if (Math.abs(delta) >= 0.5) scrollerOf(els.pane).scrollTop += delta;
  }
  renderEmpty();
}

/** The first row in view that did not change, when the list is scrolled past its top (at
 * the top, new rows push the others down). */
function anchorRow() {
  if (!lay.rows.length) return null;
  const view = viewport(els.groups, els.pane);
  if (view.top <= 0) return null;
  let [i] = rowsIn(lay, view.top, view.bottom);
  for (; i < lay.rows.length && lay.rows[i].top < view.bottom; i++) {
    const entry = lay.rows[i];
    if (!model.moved.has(entry.key) && model.entries.get(entry.key) === entry) return { key: entry.key, top: entry.top };
  }
  return null;
}

/**
 * Make the DOM show the rows near the viewport (and ``pinKey``'s row and the focused
 * row, wherever they are), laying the list out first if anything changed.
 */
function render(pinKey = null) {
  const geo = readGeometry(els.groups);
  if (!sameGeometry(geo, geometry)) {
    geometry = geo;
    dirty = true;
  }
  const focused = document.activeElement && els.groups.contains(document.activeElement) ? document.activeElement : null;
  if (dirty) relayout();

  const { wanted, groupList } = model.entries.size <= WHOLE_LIST_ROWS ? wholeList()
    : inWindow([rowKeyOf(focused), pinKey, revealKey]);
  const groupSet = new Set(groupList);

  // Out of the window: rows back to the pool, groups out of the DOM (kept for later).
  const keep = new Set();
  for (const entry of wanted) keep.add(entry.key);
  for (const [key, row] of rendered) {
    if (keep.has(key)) continue;
    row.el.remove();
    resetRow(row);
    rendered.delete(key);
    pool.push(row);
  }
  for (const group of attached) {
    if (groupSet.has(group)) continue;
    group.dom.el.remove();
    attached.delete(group);
  }

  const sections = [];
  for (const group of groupList) {
    if (!group.dom) group.dom = createGroup(group.key);
    const dom = group.dom;
    const shown = group.layoutGen === lay.gen;
    setHidden(dom.el, !shown);
    attached.add(group);
    sections.push(dom.el);
    if (!shown) continue;
    if (dom.top !== group.top) {
      dom.el.style.top = `${group.top}px`;
      dom.top = group.top;
    }
    if (dom.height !== group.height) {
      dom.el.style.height = `${group.height}px`;
      dom.height = group.height;
    }
    fillGroupCounts(dom, group.shown, group.shownActive);
  }
  reorder(els.groups, sections);

  const ctx = fillContext();
  for (let i = 0; i < wanted.length;) {
    const group = wanted[i].group;
    const nodes = [];
    for (; i < wanted.length && wanted[i].group === group; i++) nodes.push(renderRow(wanted[i], ctx).el);
    reorder(group.dom.list, nodes);
  }
  pulses.clear();

  // Moving a focused node blurs it: give the focus back.
  if (focused && document.activeElement !== focused && focused.isConnected) focused.focus({ preventScroll: true });

  // The open session's row is in view beside it (the list pane starts at its top).
  if (revealKey && (shownEntry(revealKey) || hasReceived())) {
    const row = rendered.get(revealKey);
    revealKey = null;
    if (row && !row.el.hidden) {
      row.el.scrollIntoView({ block: 'nearest' });
      render();
    }
  }
}

/** A short list: every group and row, those the filters leave out hidden. */
function wholeList() {
  const wanted = [];
  for (const group of model.order) for (const entry of group.members) wanted.push(entry);
  return { wanted, groupList: model.order };
}

/** A long list: the shown rows and groups near the viewport, and the rows of ``pins``. */
function inWindow(pins) {
  const view = viewport(els.groups, els.pane);
  const top = view.top - OVERSCAN;
  const bottom = Math.max(view.bottom, view.top) + OVERSCAN;
  const [from, to] = rowsIn(lay, top, bottom);
  const wanted = lay.rows.slice(from, to);
  let pinned = false;
  for (const key of pins) {
    const entry = shownEntry(key);
    if (entry && (entry.index < from || entry.index >= to) && !wanted.includes(entry)) {
      wanted.push(entry);
      pinned = true;
    }
  }
  if (pinned) wanted.sort((a, b) => a.index - b.index);
  const [gFrom, gTo] = groupsIn(lay, top, bottom);
  const groups = new Set(lay.groups.slice(gFrom, gTo));
  for (const entry of wanted) groups.add(entry.group);
  return { wanted, groupList: [...groups].sort((a, b) => a.top - b.top) };
}

function renderRow(entry, ctx) {
  let row = rendered.get(entry.key);
  if (!row) {
    row = pool.pop() || createRow((key) => onOpen(key));
    rendered.set(entry.key, row);
  }
  if (row.key !== entry.key || row.session !== entry.session || row.fillGen !== ctx.gen) fillRow(row, entry, ctx);
  const shown = entry.layoutGen === lay.gen;
  setHidden(row.el, !shown);
  if (!shown) return row;
  if (row.top !== entry.offset) {
    row.el.style.top = `${entry.offset}px`;
    row.top = entry.offset;
  }
  if (pulses.has(entry.key)) pulse(row);
  return row;
}

/** Put children of parent in the given order, moving only nodes out of place. */
function reorder(parent, nodes) {
  let cursor = parent.firstElementChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(node, cursor);
  }
}

// -- summary and filters ------------------------------------------------------------------

const renderSummary = () => controls.renderSummary(model.counts, model.entries.size);
const renderProjectOptions = () => controls.renderProjectOptions(model.groups.keys(), filters.project);
const renderAgentOptions = () => controls.renderAgentOptions(model.sourceList(), filters.agent);
const renderHostOptions = () => controls.renderHostOptions(hostNames, filters.host);
const renderEmpty = () => controls.renderEmpty(lay.rows.length,
  { received: hasReceived(), filtered: filter.active, filters });

function applyFilters() {
  if (filter.set(filters, manyHosts)) invalidate();
  controls.markFilters(filters);
}

/** The filters changed (typing, a select, the address): show what matches. At once, not
 * in the next frame: the work is done while the frame is awaited, not inside it. */
export function refilter() {
  if (controls.projectOptionsStale(filters.project)) renderProjectOptions();
  renderAgentOptions();
  renderHostOptions();
  applyFilters();
  if (dirty) flush();
}

// -- rows: selection, links, time --------------------------------------------------------

/** The open session's row is marked (it need not be listed yet). */
export function markSelected(key) {
  selectedKey = key;
  for (const row of rendered.values()) row.el.classList.toggle('row-selected', row.key === key);
  revealKey = key;
  if (key) schedule();
}

/** The address changed (or is about to: ``query``, its query string): every row's link
 * keeps the other parameters. */
export function refreshLinks(query = location.search) {
  if (query === linkQuery) return;
  linkQuery = query;
  const href = sessionHrefs();
  for (const row of rendered.values()) setAttr(row.link, 'href', href(row.key));
}

/** Every rendered row's relative time, once a second. */
export function tick(now) {
  for (const row of rendered.values()) setText(row.f.time, relativeTime(row.updated, now));
}

// -- keyboard --------------------------------------------------------------------------------

/** Render ``entry``'s row (scrolling it into view) and focus its link. */
function focusEntry(entry) {
  render(entry.key);
  const row = rendered.get(entry.key);
  if (!row) return null;
  row.link.focus({ preventScroll: true });
  row.el.scrollIntoView({ block: 'nearest' }); // the row: it has the scroll margins
  render(); // the rows around it, at the new scroll position
  return row.link;
}

/** Whether ``el`` is a row's link (keyboard navigation moves between these). */
export function isRowLink(el) {
  return el instanceof Element && el.classList.contains('row-link') && els.groups.contains(el);
}

/** Focus the first shown row; its link, or null when no row is shown. */
export function focusFirst() {
  flush();
  return lay.rows.length ? focusEntry(lay.rows[0]) : null;
}

/**
 * Focus the row ``step`` rows after (before, if negative) the one holding ``from``, across
 * the whole shown list, rendered or not. Its link, or null when there is no such row.
 */
export function focusNext(from, step) {
  flush();
  const entry = shownEntry(rowKeyOf(from));
  if (!entry) return focusFirst();
  const next = lay.rows[entry.index + step];
  return next ? focusEntry(next) : null;
}

/** Give the row of ``key`` the focus, if it is shown; true when it was. */
export function focusRow(key) {
  flush();
  const entry = shownEntry(key);
  return Boolean(entry && focusEntry(entry));
}

/** The links of the rows in the DOM now (the window), top to bottom. */
export function visibleRowLinks() {
  flush();
  return [...els.groups.querySelectorAll('.group:not([hidden]) .row:not([hidden]) .row-link')];
}
