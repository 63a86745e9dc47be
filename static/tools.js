/* Tool calls as cards: the tool's name and what it was asked (a command, a path, a pattern),
its status (waiting for its result, done, failed) and how long it took, its arguments, an
edit as a diff (the agent's own patch where it writes one: Claude Code's structuredPatch,
Codex's apply_patch), and its result, long output folded. Every string is masked and set as
text (SPEC section 6).
*/

import { h, setText } from './dom.js';
import { plural } from './format.js';
import { maskSecrets } from './mask.js';

const FOLD_CHARS = 1600;
const FOLD_LINES = 24;
// The argument shown in a card's head, by the names agents give it.
const SUMMARY_ARGS = ['command', 'cmd', 'file_path', 'filePath', 'path', 'absolute_path', 'pattern', 'query', 'url',
  'description', 'prompt'];

export function foldIfLong(el, text, lines = text.split('\n').length) {
  if (text.length <= FOLD_CHARS && lines <= FOLD_LINES) return el;
  el.classList.add('folded');
  const button = h('button', { type: 'button', class: 'unfold', 'aria-expanded': 'false' }, 'Show more');
  button.addEventListener('click', () => {
    const folded = el.classList.toggle('folded');
    button.setAttribute('aria-expanded', folded ? 'false' : 'true');
    setText(button, folded ? 'Show more' : 'Show less');
  });
  el.append(button);
  return el;
}

function parseArgs(input) {
  try {
    const args = JSON.parse(input);
    return args && typeof args === 'object' && !Array.isArray(args) ? args : null;
  } catch (err) {
    return null;
  }
}

function summaryOf(args) {
  if (!args) return '';
  for (const name of SUMMARY_ARGS) {
    const value = args[name];
    if (typeof value === 'string' && value.trim()) return value.trim().split('\n')[0];
    if (Array.isArray(value) && value.length && value.every((v) => typeof v === 'string')) return value.join(' ');
  }
  return '';
}

/** Tool input: a JSON object reads best as name / value lines; anything else as it came. */
function renderArgs(input, args) {
  if (!args || !Object.keys(args).length) return foldIfLong(h('pre', { class: 'tool-input' }, input), input);
  const list = h('dl', { class: 'tool-input tool-args' });
  const shown = [];
  for (const [name, value] of Object.entries(args)) {
    const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
    list.append(h('dt', null, name), h('dd', null, text));
    shown.push(text);
  }
  // Fold by what is shown: a long script is one line of JSON but many lines on screen.
  return foldIfLong(list, shown.join('\n'));
}

function validHunks(patch) {
  return Array.isArray(patch) ? patch.filter((hunk) => hunk && Array.isArray(hunk.lines)) : [];
}

/** Hunks ({oldStart, newStart, lines: [' ctx', '-old', '+new']}) as a table with both line numbers. */
export function renderDiff(patch, { truncated, path } = {}) {
  const hunks = validHunks(patch);
  const body = h('tbody');
  let changed = 0;
  for (const hunk of hunks) {
    let oldNo = Number.isInteger(hunk.oldStart) ? hunk.oldStart : null;
    let newNo = Number.isInteger(hunk.newStart) ? hunk.newStart : null;
    body.append(h('tr', { class: 'diff-hunk' }, h('td', { colspan: '3' },
      `@@ ${oldNo ?? '?'},${hunk.oldLines ?? '?'} → ${newNo ?? '?'},${hunk.newLines ?? '?'} @@`)));
    for (const raw of hunk.lines) {
      const line = maskSecrets(String(raw));
      const sign = line.charAt(0);
      let cls = 'diff-ctx';
      let left = '';
      let right = '';
      if (sign === '-') {
        cls = 'diff-del';
        left = oldNo ?? '';
        if (oldNo !== null) oldNo += 1;
        changed += 1;
      } else if (sign === '+') {
        cls = 'diff-add';
        right = newNo ?? '';
        if (newNo !== null) newNo += 1;
        changed += 1;
      } else if (sign === '\\') {
        cls = 'diff-note';
      } else {
        left = oldNo ?? '';
        right = newNo ?? '';
        if (oldNo !== null) oldNo += 1;
        if (newNo !== null) newNo += 1;
      }
      body.append(h('tr', { class: cls }, h('td', { class: 'diff-no' }, String(left)),
        h('td', { class: 'diff-no' }, String(right)), h('td', { class: 'diff-line' }, line)));
    }
  }
  const table = h('table', { class: 'diff' }, body);
  const wrap = h('div', { class: 'diff-wrap', 'data-diff': '' },
    path ? h('div', { class: 'diff-path' }, maskSecrets(path)) : null, table,
    truncated ? h('div', { class: 'diff-note' }, 'The rest of this change is not shown.') : null);
  const lines = hunks.reduce((n, hunk) => n + hunk.lines.length, 0);
  wrap.dataset.changed = String(changed);
  return foldIfLong(wrap, '', lines + hunks.length);
}

/** Codex's apply_patch text ("*** Begin Patch", "*** Update File: p", "@@", "-old", "+new") as a diff. */
function renderPatchText(text) {
  const body = h('tbody');
  for (const line of text.split('\n')) {
    let cls = 'diff-ctx';
    if (line.startsWith('***')) cls = 'diff-file';
    else if (line.startsWith('@@')) cls = 'diff-hunk';
    else if (line.startsWith('+')) cls = 'diff-add';
    else if (line.startsWith('-')) cls = 'diff-del';
    body.append(h('tr', { class: cls }, h('td', { class: 'diff-line' }, line)));
  }
  return foldIfLong(h('div', { class: 'diff-wrap', 'data-diff': '' }, h('table', { class: 'diff' }, body)), text);
}

function patchTextOf(input, args) {
  if (typeof input === 'string' && input.trimStart().startsWith('*** Begin Patch')) return input;
  const value = args && (args.patch || args.input);
  return typeof value === 'string' && value.trimStart().startsWith('*** Begin Patch') ? value : null;
}

/** A tool call's card; ``when``: its message's time (the duration is counted from it). */
export function renderToolUse(block, when) {
  const input = maskSecrets(block.input || '');
  const args = parseArgs(input);
  const summary = maskSecrets(summaryOf(args));
  const status = h('span', { class: 'tool-status', 'data-tool-status': 'waiting', title: 'No result yet' }, 'waiting');
  const card = h('div', { class: 'tool', 'data-tool': maskSecrets(block.name || 'tool') },
    h('div', { class: 'tool-head' },
      h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '›'),
      h('span', { class: 'tool-name' }, maskSecrets(block.name || 'tool')),
      summary ? h('span', { class: 'tool-summary', title: summary }, summary) : null,
      status,
      h('span', { class: 'tool-duration' })));
  const patchText = patchTextOf(input, args);
  if (validHunks(block.patch).length) {
    card.append(renderDiff(block.patch, { truncated: block.patchTruncated, path: args && (args.file_path || args.path) }));
  } else if (patchText) {
    card.append(renderPatchText(patchText));
  } else if (input) {
    card.append(renderArgs(input, args));
  }
  if (Number.isFinite(when)) card.dataset.started = String(when);
  return card;
}

function elapsed(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** The card's call has a result (at ``when``): its status and duration say so, and the agent's
 * own patch (with the file's line numbers) is shown in place of the one worked out from the call.
 * Returns what undoes it (the result's message can be rendered again) and the new diff, if any. */
export function settle(card, block, when) {
  const status = card.querySelector('.tool-status');
  const duration = card.querySelector('.tool-duration');
  const before = status && { state: status.dataset.toolStatus, title: status.title, text: status.textContent };
  const took = duration ? duration.textContent : '';
  if (status) {
    const failed = Boolean(block.isError);
    status.dataset.toolStatus = failed ? 'error' : 'done';
    status.title = failed ? 'The tool reported an error' : 'Done';
    setText(status, failed ? 'error' : 'done');
  }
  const started = Number(card.dataset.started);
  if (duration) setText(duration, Number.isFinite(when) && Number.isFinite(started) ? elapsed(when - started) : '');
  let diff = null;
  const old = card.querySelector(':scope > .diff-wrap:not([hidden])');
  if (validHunks(block.patch).length) {
    diff = renderDiff(block.patch, { truncated: block.patchTruncated, path: block.filePath });
    if (old) {
      old.hidden = true;
      old.after(diff);
    } else {
      card.querySelector('.tool-head').after(diff);
    }
  }
  const undo = () => {
    if (status && before) {
      status.dataset.toolStatus = before.state;
      status.title = before.title;
      setText(status, before.text);
    }
    if (duration) setText(duration, took);
    if (diff && old) old.hidden = false;
  };
  return { undo, diff };
}

export function renderToolResult(block) {
  const text = maskSecrets(block.text || '');
  const lines = text ? text.split('\n').length : 0;
  const label = block.isError ? 'Error' : 'Output';
  const summary = h('summary', null,
    h('span', { class: 'result-label' }, label),
    h('span', { class: 'result-size' }, text ? ` · ${plural(lines, 'line')}${block.truncated ? ', truncated' : ''}` : ' · empty'));
  const details = h('details', { class: 'tool-result' + (block.isError ? ' tool-error' : '') }, summary,
    foldIfLong(h('pre', { class: 'result-text' }, text), text));
  // Short output and errors are worth reading without a click.
  if (block.isError || (lines <= 6 && text.length < 600)) details.open = true;
  return details;
}
