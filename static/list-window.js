/* Windowing: where every shown row and group header sits, and which of them are in view.

The list is one tall container (its height is the whole list's, so the scrollbar is
true) in which only the groups and rows near the viewport exist, absolutely placed.
Every piece has a height fixed by the style sheet (--row-h, --row-h-short for a row
without a prompt line, --group-head-h, --group-gap; other values in the narrow layouts),
read here from the container's computed style, so the position of any row follows from
the order alone, without measuring the DOM.

layout() walks the model once (groups in order, each group's members in order), keeps
the entries the filter shows and gives each its index in the shown sequence and its top;
this is a pass of additions over the sessions, with no sorting and no DOM. When the query
only narrows the previous one and the model has not changed, it walks the previous shown
sequence instead (typing "f", "fi", "fix" tests all sessions once, then fewer and fewer).
rowsIn() and groupsIn() find what crosses a band of the container by binary search.
*/

/** The heights the style sheet gives the list's pieces (px), for the layout in effect. */
export function readGeometry(container) {
  const style = getComputedStyle(container);
  const px = (name, fallback) => {
    const v = parseFloat(style.getPropertyValue(name));
    return Number.isFinite(v) ? v : fallback;
  };
  return {
    row: px('--row-h', 83),
    short: px('--row-h-short', 63),
    head: px('--group-head-h', 38),
    gap: px('--group-gap', 14),
    border: px('--group-border', 1),
  };
}

export const sameGeometry = (a, b) => Boolean(a && b) &&
  a.row === b.row && a.short === b.short && a.head === b.head && a.gap === b.gap && a.border === b.border;

/**
 * The shown sequence: ``rows`` (entries, in order) and ``groups`` (groups with a shown
 * row), each with its place: entry.index/top/offset/height, group.top/height/shown/first.
 * ``within``: the previous sequence, when the filter only narrowed it (else every group).
 * A group's rows list starts one pixel above the header's bottom edge: each row draws
 * the line above itself, and the first one's falls on the header's.
 */
export function layout(order, filter, geo, gen, within = null) {
  const state = { rows: [], groups: [], y: 0 };
  if (within) {
    for (let i = 0; i < within.length;) {
      const group = within[i].group;
      const start = i;
      while (i < within.length && within[i].group === group) i += 1;
      placeGroup(state, group, within, start, i, filter, geo, gen);
    }
  } else {
    for (let g = 0; g < order.length; g++) {
      const group = order[g];
      placeGroup(state, group, group.members, 0, group.members.length, filter, geo, gen);
    }
  }
  return { gen, rows: state.rows, groups: state.groups, height: state.y };
}

/** Place the shown ones of entries[from, to) (one group's) after what is placed already.
 * (A function of its own: V8 optimises it whole, rather than the loop inside a loop.) */
function placeGroup(state, group, entries, from, to, filter, geo, gen) {
  const rows = state.rows;
  const first = rows.length;
  const base = state.y + geo.border + geo.head - 1;
  let offset = 0;
  let active = 0;
  for (let i = from; i < to; i++) {
    const entry = entries[i];
    if (!filter.test(entry)) continue;
    const height = entry.short ? geo.short : geo.row;
    entry.index = rows.length;
    entry.layoutGen = gen;
    entry.offset = offset;
    entry.top = base + offset;
    entry.height = height;
    offset += height;
    if (entry.active) active += 1;
    rows.push(entry);
  }
  if (rows.length === first) return;
  group.layoutGen = gen;
  group.top = state.y;
  group.height = 2 * geo.border + geo.head - 1 + offset;
  group.shown = rows.length - first;
  group.shownActive = active;
  group.first = first;
  state.groups.push(group);
  state.y += group.height + geo.gap;
}

/** The first index of ``items`` (sorted by top) whose bottom is below ``y``. */
function firstBelow(items, y) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const it = items[mid];
    if (it.top + it.height <= y) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** [from, to): the shown rows that cross the band [top, bottom) of the container. */
export function rowsIn(lay, top, bottom) {
  const from = firstBelow(lay.rows, top);
  let to = from;
  while (to < lay.rows.length && lay.rows[to].top < bottom) to += 1;
  return [from, to];
}

/** [from, to): the shown groups that cross the band [top, bottom) of the container. */
export function groupsIn(lay, top, bottom) {
  const from = firstBelow(lay.groups, top);
  let to = from;
  while (to < lay.groups.length && lay.groups[to].top < bottom) to += 1;
  return [from, to];
}

/** The part of the container in view, in its own coordinates: the window, clipped to the
 * list pane (which scrolls by itself while a session is open on a wide screen). */
export function viewport(container, pane) {
  const box = container.getBoundingClientRect();
  const clip = pane.getBoundingClientRect();
  const top = Math.max(0, clip.top);
  const bottom = Math.min(window.innerHeight || document.documentElement.clientHeight, clip.bottom);
  return { top: top - box.top, bottom: bottom - box.top };
}

/** What scrolls the list: the pane when it scrolls by itself, else the document. */
export function scrollerOf(pane) {
  const overflow = getComputedStyle(pane).overflowY;
  if ((overflow === 'auto' || overflow === 'scroll') && pane.scrollHeight > pane.clientHeight) return pane;
  return document.scrollingElement || document.documentElement;
}
