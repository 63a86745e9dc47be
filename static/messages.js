/* A conversation's messages as DOM: prompts, replies (one bubble per reply) and reasoning as
Markdown (markdown.js: raw HTML stays text, the result sanitised), tool calls as cards with
their results attached (tools.js), a subagent's transcript opened in place (thread.js),
injected context folded, content of a kind not known here as its raw JSON. Every string is
masked; everything but the sanitised Markdown is set as text (SPEC section 6).

The view object (view.js) carries what rendering needs across batches: the agent (replies
carry its name), tool cards by call id, results already shown, the last reply's bubble, and
the last few messages rendered with what each added, so that one rewritten in place can be
taken back and rendered again.
*/

import { h } from './dom.js';
import { absoluteTime, agentLabel, compactNumber, shortModel, timeOf } from './format.js';
import { markdownBlock } from './markdown.js';
import { maskSecrets } from './mask.js';
import { subagentButton } from './thread.js';
import { foldIfLong, renderToolResult, renderToolUse, settle } from './tools.js';

// How many of the last messages follow() reads again (see view.recent).
const RECHECK = 4;
// The view being rendered into (set by renderBatch and undoFrom).
let view = null;
// While a message at the end is rendered: what it added, so that it can be taken back.
let undoLog = null;
// The time of the message being rendered (a tool's duration runs from its call to its result).
let when = null;

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
    for (let i = undo.restore.length - 1; i >= 0; i -= 1) undo.restore[i]();
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
    if (atEnd) undoLog = { nodes: [], tools: [], results: [], restore: [], last: view.last };
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
  const { undo, diff } = settle(card, block, when);
  if (undoLog) {
    undoLog.restore.push(undo);
    if (diff) undoLog.nodes.push(diff);
  }
  card.append(added(renderToolResult(block)));
  if (block.agentId) card.append(added(subagentButton(view, block.agentId)));
  return true;
}

function renderMessage(message) {
  const blocks = Array.isArray(message.blocks) ? message.blocks : [];
  when = timeOf(message.timestamp);
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
    case 'tool_use': {
      const card = renderToolUse(block, when);
      if (block.id) {
        card.dataset.toolUseId = block.id;
        view.tools.set(block.id, card);
        if (undoLog) undoLog.tools.push(block.id);
      }
      return card;
    }
    case 'tool_result': {
      const el = renderToolResult(block);
      return block.agentId ? h('div', null, el, subagentButton(view, block.agentId)) : el;
    }
    case 'image':
      return h('div', { class: 'placeholder', 'data-block': 'image' }, imageLabel(block));
    default:
      return renderUnknown(block);
  }
}

function imageLabel(block) {
  const parts = [typeof block.mediaType === 'string' ? maskSecrets(block.mediaType) : null,
    Number.isFinite(block.bytes) && block.bytes > 0 ? `${compactNumber(block.bytes / 1024)} KB` : null].filter(Boolean);
  return parts.length ? `Image (${parts.join(', ')})` : 'Image';
}

/** Content this page does not know: its raw JSON, folded, rather than nothing. */
function renderUnknown(block) {
  const kind = block && typeof block.kind === 'string' ? block.kind : block && block.type;
  let raw = block && typeof block.raw === 'string' ? block.raw : null;
  if (raw === null) {
    try {
      raw = JSON.stringify(block, null, 2);
    } catch (err) {
      raw = String(block);
    }
  }
  const text = maskSecrets(raw);
  return h('details', { class: 'unknown-block', 'data-block': 'unknown' },
    h('summary', null, `Content of an unknown kind (${maskSecrets(String(kind || 'no type'))})`),
    foldIfLong(h('pre', { class: 'raw-json' }, text), text));
}

/** Prose: Markdown, rendered safely (markdown.js), folded when long. */
function renderText(raw, cls) {
  const text = maskSecrets(raw);
  return foldIfLong(markdownBlock(text, cls), text);
}
