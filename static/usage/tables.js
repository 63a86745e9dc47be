/* The usage view's HTML: tables (each chart's numbers), bar lists, the heatmap, badges.
 *
 * Every string becomes text (dom.js h()), never HTML. A table cell with a number keeps the
 * exact number in data-value (the text may be rounded: "$0.0633", "12.5k") and a cost cell
 * its provenance in data-basis. A block is rebuilt only when what it shows changed, so a
 * live update that moves nothing touches nothing (and an open <details> stays as it is).
 */

import { h, setAttr, setText } from '../dom.js';
import { BASIS, basisOf, costTitle, count, usd } from './numbers.js';

const shown = new WeakMap(); // element -> signature of what it shows

/** Run build() into el only when signature differs from the last one built there. */
function once(el, signature, build) {
  if (shown.get(el) === signature) return false;
  shown.set(el, signature);
  build();
  return true;
}

// -- cells -----------------------------------------------------------------------------------

export const text = (value, extra) => Object.assign({ text: String(value) }, extra || {});

export const num = (value, formatted) => ({ text: formatted === undefined ? count(value) : formatted, value, numeric: true });

export function costCell(cost) {
  const basis = basisOf(cost);
  return { text: usd(cost ? cost.usd : null), value: cost && typeof cost.usd === 'number' ? cost.usd : '', basis, numeric: true, title: costTitle(cost) };
}

function cellEl(tag, cell) {
  const attrs = { class: cell.numeric ? 'num' : null, title: cell.title || null };
  if (cell.value !== undefined) attrs['data-value'] = cell.value === null ? '' : cell.value;
  if (cell.basis) attrs['data-basis'] = cell.basis;
  if (tag === 'th') attrs.scope = cell.scope || 'row';
  if (cell.key !== undefined) attrs['data-key'] = cell.key;
  let content = cell.text;
  if (cell.time) content = h('time', { datetime: cell.time, title: cell.time }, cell.text);
  else if (cell.href) content = h('a', { href: cell.href }, cell.text);
  return h(tag, attrs, content);
}

/**
 * table: the <table data-usage-table>; spec: {caption, head: [labels], rows: [[cells]], foot: [[cells]]}.
 * The first cell of each row is its header (<th scope="row">).
 */
export function renderTable(table, spec) {
  once(table, JSON.stringify(spec), () => {
    const parts = [];
    if (spec.caption) parts.push(h('caption', { class: 'visually-hidden' }, spec.caption));
    parts.push(h('thead', null, h('tr', null, ...spec.head.map((label, i) => h('th', { scope: 'col', class: i ? 'num' : null }, label)))));
    const body = (rows) => rows.map((row, r) => h('tr', { 'data-row': r }, ...row.map((cell, i) => cellEl(i ? 'td' : 'th', cell))));
    parts.push(h('tbody', null, ...body(spec.rows)));
    if (spec.foot && spec.foot.length) parts.push(h('tfoot', null, ...body(spec.foot)));
    table.replaceChildren(...parts);
  });
}

// -- badges ----------------------------------------------------------------------------------

/** The provenance of a cost, as a small badge. */
export function badge(cost) {
  const basis = basisOf(cost);
  return h('span', { class: 'basis', 'data-basis': basis, title: BASIS[basis].long }, BASIS[basis].short);
}

/** Put a cost and its badge into el (a summary number). */
export function renderCost(el, cost) {
  once(el, JSON.stringify(cost || null), () => {
    el.replaceChildren(h('span', { class: 'cost-value', 'data-value': cost && typeof cost.usd === 'number' ? cost.usd : '' }, usd(cost ? cost.usd : null)), ' ', badge(cost));
    setAttr(el, 'title', costTitle(cost));
  });
}

// -- bar lists (top projects, top sessions) --------------------------------------------------

/**
 * list: an <ol data-usage-chart>; items: [{key, label, title, href, value (by the measure), text,
 * cost, series}]; max: the longest bar's value. A bar's length is a CSS custom property set
 * through the CSSOM (style.setProperty), which the page's CSP allows (no style attribute).
 */
export function renderBars(list, items, max) {
  once(list, JSON.stringify([items, max]), () => {
    list.replaceChildren(...items.map((item) => {
      const share = max > 0 && item.value ? Math.max(0.5, (item.value / max) * 100) : 0;
      const bar = h('span', { class: 'bar-fill', 'data-series': item.series === undefined ? null : item.series });
      bar.style.setProperty('--share', `${share.toFixed(2)}%`);
      const name = item.href
        ? h('a', { class: 'bar-name', href: item.href, title: item.title || null }, item.label)
        : h('span', { class: 'bar-name', title: item.title || null }, item.label);
      return h('li', { class: item.other ? 'bar-row bar-other' : 'bar-row', 'data-key': item.key },
        name,
        h('span', { class: 'bar-track', 'aria-hidden': 'true' }, bar),
        h('span', { class: 'bar-value' }, item.text, item.cost ? ' ' : null, item.cost ? badge(item.cost) : null));
    }));
  });
}

// -- heatmap ---------------------------------------------------------------------------------

/**
 * table: the visual <table data-usage-chart="heatmap">; cells [7][24] as {level, title};
 * weekdays: row names. The numbers are in the paired data table.
 */
export function renderHeat(table, cells, weekdays) {
  once(table, JSON.stringify(cells), () => {
    const hours = Array.from({ length: 24 }, (_, hr) => h('th', { scope: 'col', class: hr % 3 ? 'heat-hour minor' : 'heat-hour' },
      String(hr).padStart(2, '0')));
    const head = h('thead', null, h('tr', null, h('td', { class: 'heat-corner' }), ...hours));
    const rows = cells.map((row, d) => h('tr', null, h('th', { scope: 'row', class: 'heat-day' }, weekdays[d]),
      ...row.map((cell) => h('td', { class: 'heat-cell', 'data-level': cell.level, title: cell.title }))));
    table.replaceChildren(h('caption', { class: 'visually-hidden' }, 'Activity by weekday and hour'), head, h('tbody', null, ...rows));
  });
}

// -- legend ----------------------------------------------------------------------------------

/** el: the legend under a stacked chart; items: [{label, title, series}]. */
export function renderLegend(el, items) {
  once(el, JSON.stringify(items), () => {
    el.replaceChildren(...items.map((item) => h('li', { class: 'legend-item', title: item.title || null },
      h('span', { class: 'swatch', 'data-series': item.series, 'aria-hidden': 'true' }), item.label)));
  });
}

export { setText, setAttr };
