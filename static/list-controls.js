/* Around the session list: the summary (active, per status, total), the empty state and
the options of the project, agent and host filters.

Each is rendered from counts and sets the list's model keeps up to date (list-order.js),
never by walking the sessions, and each writes the DOM only when what it shows changed.
*/

import { $, h, setHidden, setText } from './dom.js';
import { STATUSES, agentLabel, baseName, plural } from './format.js';
import { BASE_TITLE } from './settings.js';

const els = {
  empty: $('empty'),
  emptyTitle: $('empty-title'),
  emptyText: $('empty-text'),
  activeCount: document.querySelector('[data-active-count]'),
  statusCounts: $('status-counts'),
  totalCount: $('total-count'),
  project: $('project-filter'),
  agent: $('agent-filter'),
  host: $('host-filter'),
};

const collator = new Intl.Collator(); // made now, while the page waits for the list: it takes a while
let projectSig = null; // the project options as rendered
let projectFor = null; // ... and the project filter they were rendered for
let agentSig = null;
let hostSig = null;

/** counts: sessions per status; total: all sessions. The tab's title says how many are active. */
export function renderSummary(counts, total) {
  const active = counts.busy + counts.waiting + counts.idle;
  setText(els.activeCount, active);
  const parts = STATUSES.filter((s) => s !== 'ended' && counts[s]).map((s) => `${counts[s]} ${s}`);
  setText(els.statusCounts, parts.join(' · '));
  setText(els.totalCount, plural(total, 'session'));
  const title = active ? `(${active}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
}

/** What the list says when it shows nothing: loading, nothing matches, or no sessions yet. */
export function renderEmpty(visible, { received, filtered, filters }) {
  setHidden(els.empty, visible > 0);
  if (visible > 0) return;
  if (!received) {
    setText(els.emptyTitle, 'Loading sessions…');
    setText(els.emptyText, '');
  } else if (filtered) {
    setText(els.emptyTitle, 'No sessions match');
    const where = [filters.project ? 'in this project' : '', filters.agent ? `of ${agentLabel(filters.agent)}` : '',
      filters.host ? `on ${filters.host}` : ''].filter(Boolean).join(' ');
    setText(els.emptyText, filters.query.trim() ? `Nothing matches “${filters.query}”${where ? ' ' + where : ''}.`
      : `No sessions ${where || 'here'}.`);
  } else {
    setText(els.emptyTitle, 'No sessions yet');
    setText(els.emptyText, 'A session shows up here the moment Claude Code, Codex, OpenCode or Gemini CLI starts writing it.');
  }
}

/** The selects say which filters narrow the list. */
export function markFilters(filters) {
  els.project.classList.toggle('is-set', Boolean(filters.project));
  els.agent.classList.toggle('is-set', Boolean(filters.agent));
  els.host.classList.toggle('is-set', Boolean(filters.host));
}

/** The project filter was rendered for another project than ``project``. */
export const projectOptionsStale = (project) => project !== projectFor;

/** The project filter lists the projects (``keys``), and the one filtered on even if it has none. */
export function renderProjectOptions(keys, project) {
  projectFor = project;
  keys = [...keys];
  if (project && !keys.includes(project)) keys.push(project);
  keys.sort((a, b) => collator.compare(baseName(a), baseName(b)) || collator.compare(a, b));
  const sig = keys.join('\n');
  if (sig !== projectSig) {
    projectSig = sig;
    while (els.project.options.length > 1) els.project.remove(1);
    const names = new Map();
    for (const key of keys) names.set(baseName(key), (names.get(baseName(key)) || 0) + 1);
    for (const key of keys) {
      // Two projects with the same folder name: show the full path to tell them apart.
      const label = names.get(baseName(key)) > 1 ? key : baseName(key);
      els.project.add(h('option', { value: key, title: key }, label));
    }
  }
  if (els.project.value !== project) els.project.value = project;
}

/** The agent filter lists the agents seen; it stays out of the way while there is only one. */
export function renderAgentOptions(sources, agent) {
  const seen = new Set(sources);
  if (agent) seen.add(agent);
  const agents = [...seen].sort((a, b) => collator.compare(agentLabel(a), agentLabel(b)));
  const sig = agents.join('\n');
  if (sig !== agentSig) {
    agentSig = sig;
    while (els.agent.options.length > 1) els.agent.remove(1);
    for (const a of agents) els.agent.add(h('option', { value: a }, agentLabel(a)));
  }
  if (els.agent.value !== agent) els.agent.value = agent;
  setHidden(els.agent, agents.length < 2 && !agent);
}

/** The host filter lists the known hosts (sorted); like the host chips, it shows only once
 * more than one host is known (SPEC section 7), or while the address filters on one. */
export function renderHostOptions(names, host) {
  const hosts = [...names];
  if (host && !hosts.includes(host)) hosts.push(host);
  const sig = hosts.join('\n');
  if (sig !== hostSig) {
    hostSig = sig;
    while (els.host.options.length > 1) els.host.remove(1);
    for (const name of hosts) els.host.add(h('option', { value: name }, name));
  }
  if (els.host.value !== host) els.host.value = host;
  setHidden(els.host, names.length < 2 && !host);
}
