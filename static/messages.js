/* A conversation's messages as DOM: prompts, replies (one bubble per reply), tool calls with
their results attached, reasoning and injected context folded. Every string is masked and
shown as text, never as HTML (SPEC section 6).

The view object (view.js) carries what rendering needs across batches: the agent (replies
carry its name), tool cards by call id, results already shown, the last reply's bubble, and
the last few messages rendered with what each added, so that one rewritten in place can be
taken back and rendered again.
*/

import { h, setText } from './dom.js';
import { absoluteTime, agentLabel, plural, shortModel, timeOf } from './format.js';
import { maskSecrets } from './mask.js';

// Text longer than this is folded behind a "Show more" button.
const FOLD_CHARS = 1600;
const FOLD_LINES = 24;

// How many of the last messages follow() reads again (see view.recent).
const RECHECK = 4;
// The view being rendered into (set by renderBatch and undoFrom).
let view = null;
// While a message at the end is rendered: what it added, so that it can be taken back.
let undoLog = null;

export function signature(message) {
  return JSON.stringify(message);
}

/** Note a node added for the message being rendered (nodes put inside an earlier bubble included). */
function added(node) {
  if (undoLog) undoLog.nodes.push(node);
  return node;
}

/** Take back the rendering of every recent message from ``index`` on (newest first). */
export function undoFrom(target, index) {
  view = target;
  while (view.recent.length && view.recent[view.recent.length - 1].index >= index) {
    const { undo } = view.recent.pop();
    for (let i = undo.nodes.length - 1; i >= 0; i -= 1) undo.nodes[i].remove();
    for (const id of undo.tools) view.tools.delete(id);
    for (const [id, text] of undo.results) {
      const seen = view.results.get(id);
      if (seen) seen.delete(text);
    }
    view.last = undo.last;
  }
  view.end = Math.min(view.end, index);
}

/** Render messages into a fragment; one reply's records share one bubble. ``atEnd``: after
 * what is shown (remembered for a re-render), else an earlier page. */
export function renderBatch(target, messages, atEnd) {
  view = target;
  const fragment = document.createDocumentFragment();
  if (!atEnd) view.last = null;
  for (const message of messages) {
    if (atEnd) undoLog = { nodes: [], tools: [], results: [], last: view.last };
    try {
      const el = renderMessage(message);
      if (el) fragment.append(added(el));
    } finally {
      if (atEnd) {
        view.recent.push({ index: message.index, sig: signature(message), undo: undoLog });
        if (view.recent.length > RECHECK) view.recent.shift();
      }
      undoLog = null;
    }
  }
  return fragment;
}

/** A tool result goes to the card of its call when that is shown; the same result twice shows once. */
function attachResult(block) {
  if (!block || block.type !== 'tool_result' || !block.toolUseId) return false;
  const card = view.tools.get(block.toolUseId);
  if (!card) return false;
  const text = (block.isError ? 'error:' : 'output:') + String(block.text || '');
  let seen = view.results.get(block.toolUseId);
  if (!seen) {
    seen = new Set();
    view.results.set(block.toolUseId, seen);
  }
  if (seen.has(text)) return true;
  seen.add(text);
  if (undoLog) undoLog.results.push([block.toolUseId, text]);
  card.append(added(renderToolResult(block)));
  return true;
}

function renderMessage(message) {
  const blocks = Array.isArray(message.blocks) ? message.blocks : [];
  const when = timeOf(message.timestamp);
  const kind = message.kind;

  if (kind === 'tool-result') {
    const loose = blocks.filter((block) => !attachResult(block));
    if (!loose.length) return null;
    view.last = null;
    return messageShell(message, 'tool-result', 'Tool result', when, loose.map(renderBlock));
  }

  if (kind !== 'meta' && (message.role === 'assistant' || kind === 'reply')) {
    // Claude Code splits one API message over records of one id; the other agents write a
    // turn's text, reasoning and tool calls as messages of their own: one bubble for the run.
    const merge = Boolean(view.last) && ((message.messageId && view.last.messageId === message.messageId) ||
      view.source !== 'claude-code');
    let shell = null;
    let body;
    if (merge) {
      body = view.last.body;
    } else {
      if (!blocks.length) return null; // nothing to show (yet): no empty bubble
      shell = messageShell(message, 'reply', agentLabel(view.source), when, [], shortModel(message.model));
      body = shell.querySelector('.msg-body');
    }
    for (const block of blocks) {
      if (attachResult(block)) continue; // OpenCode keeps a call's result in the reply itself
      const el = renderBlock(block);
      body.append(merge ? added(el) : el);
    }
    if (merge) {
      view.last = Object.assign({}, view.last, { messageId: message.messageId || view.last.messageId });
      return null;
    }
    view.last = { messageId: message.messageId, el: shell, body };
    return shell;
  }

  view.last = null;
  if (kind === 'prompt') return messageShell(message, 'prompt', 'You', when, blocks.map(renderBlock));
  // meta: injected context, command output, interruptions, an agent's notices: quiet and folded.
  const text = blocks.filter((b) => b.type === 'text' || b.type === 'thinking').map((b) => b.text).join('\n');
  const firstLine = maskSecrets(text).split('\n').find((l) => l.trim()) || 'System message';
  const details = h('details', { class: 'meta-details' },
    h('summary', null, firstLine.length > 140 ? firstLine.slice(0, 140) + '…' : firstLine),
    ...blocks.map(renderBlock));
  return h('li', { class: 'msg msg-meta', 'data-index': message.index, 'data-kind': 'meta' }, details);
}

function messageShell(message, kind, who, when, children, model) {
  const head = h('div', { class: 'msg-head' },
    h('span', { class: 'msg-who' }, who),
    model ? h('span', { class: 'msg-model' }, model) : null,
    when ? h('time', { class: 'msg-time', datetime: message.timestamp, title: absoluteTime(when) },
      new Date(when).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) : null);
  return h('li', { class: `msg msg-${kind}`, 'data-index': message.index, 'data-kind': kind },
    head, h('div', { class: 'msg-body' }, ...children));
}

function renderBlock(block) {
  switch (block && block.type) {
    case 'text':
      return renderText(block.text, 'text');
    case 'thinking':
      return h('details', { class: 'thinking' }, h('summary', null, 'Thinking'), renderText(block.text, 'text'));
    case 'tool_use':
      return renderToolUse(block);
    case 'tool_result':
      return renderToolResult(block);
    case 'image':
      return h('div', { class: 'placeholder' }, 'Image');
    default:
      return h('div', { class: 'placeholder' }, `Unsupported content (${String(block && block.type)})`);
  }
}

/** Plain text with ``` fences shown as code blocks; everything as text nodes. */
function renderText(raw, cls) {
  const text = maskSecrets(raw);
  const wrap = h('div', { class: cls });
  const parts = text.split(/^```[^\n]*\n?/m);
  parts.forEach((part, i) => {
    if (!part) return;
    if (i % 2 === 1) wrap.append(h('pre', { class: 'code' }, part.replace(/\n$/, '')));
    else wrap.append(h('p', { class: 'prose' }, part.replace(/^\n+|\n+$/g, '')));
  });
  foldIfLong(wrap, text);
  return wrap;
}

function foldIfLong(el, text) {
  const lines = text.split('\n').length;
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

/** Tool input: a JSON object reads best as name / value lines; anything else as it came. */
function renderToolInput(input) {
  let args = null;
  try {
    args = JSON.parse(input);
  } catch (err) {
    args = null;
  }
  if (!args || typeof args !== 'object' || Array.isArray(args) || !Object.keys(args).length) {
    return foldIfLong(h('pre', { class: 'tool-input' }, input), input);
  }
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

function renderToolUse(block) {
  const input = maskSecrets(block.input || '');
  const card = h('div', { class: 'tool' },
    h('div', { class: 'tool-head' },
      h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '›'),
      h('span', { class: 'tool-name' }, maskSecrets(block.name || 'tool'))),
    input ? renderToolInput(input) : null);
  if (block.id) {
    card.dataset.toolUseId = block.id;
    view.tools.set(block.id, card);
    if (undoLog) undoLog.tools.push(block.id);
  }
  return card;
}

function renderToolResult(block) {
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

