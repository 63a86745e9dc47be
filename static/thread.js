/* A subagent's transcript, opened in place under the call that started it (Claude Code's
Agent / Task tool: its result names the agent). The thread is fetched when opened, a page at a
time, and rendered as a conversation of its own: its replies group among themselves, its tool
calls take their own results.
*/

import { h, setHidden, setText } from './dom.js';
import { fetchJSON } from './http.js';
import { renderBatch } from './messages.js';
import { API } from './settings.js';

const PAGE = 100;

function threadState(source) {
  return { source, tools: new Map(), results: new Map(), last: null, recent: [], end: 0 };
}

/** The button that opens (and closes) agent ``agentId``'s thread of the session ``view`` shows. */
export function subagentButton(view, agentId) {
  const key = view.id;
  const source = view.source;
  const id = String(agentId);
  const button = h('button', { type: 'button', class: 'subagent-open', 'aria-expanded': 'false', 'data-subagent': id },
    'Open the subagent’s transcript');
  const list = h('ol', { class: 'messages subagent-messages', 'aria-label': 'Subagent transcript' });
  const more = h('button', { type: 'button', class: 'subagent-more' }, 'Load more');
  const state = h('p', { class: 'subagent-state', role: 'status' });
  const thread = h('div', { class: 'subagent-thread', 'data-subagent-thread': id, hidden: true }, list, state, more);
  setHidden(more, true);
  const wrap = h('div', { class: 'subagent' }, button, thread);
  const target = threadState(source);
  let next = 0;
  let loading = false;

  async function load() {
    if (loading || next === null) return;
    loading = true;
    more.disabled = true;
    if (!list.childElementCount) setText(state, 'Loading the subagent’s transcript…');
    try {
      const page = await fetchJSON(`${API}/${encodeURIComponent(key)}/subagents/${encodeURIComponent(id)}` +
        `?offset=${next}&limit=${PAGE}`);
      const messages = Array.isArray(page.messages) ? page.messages : [];
      list.append(renderBatch(target, messages, false));
      next = page.nextOffset === null || page.nextOffset === undefined ? null : page.nextOffset;
      setText(state, list.childElementCount ? '' : 'The subagent wrote nothing yet.');
      setHidden(more, next === null);
    } catch (err) {
      setText(state, err.status === 404 ? 'The subagent’s transcript is not on this host (or was removed).'
        : `Could not load the subagent’s transcript: ${err.message}`);
    } finally {
      loading = false;
      more.disabled = false;
    }
  }

  button.addEventListener('click', () => {
    const open = thread.hidden;
    setHidden(thread, !open);
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
    setText(button, open ? 'Close the subagent’s transcript' : 'Open the subagent’s transcript');
    if (open && next === 0 && !list.childElementCount) load();
  });
  more.addEventListener('click', load);
  return wrap;
}
