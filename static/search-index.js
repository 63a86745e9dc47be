/* Search over the session list: what a session is found by, and the filter the list applies.

Each list entry keeps its own lower-cased haystack (title, project, prompts, branch, model,
id, agent), built in idle time after the session arrives or changed (prepare(), called by the
list), or by the first query that needs it; so a keystroke is one pass of String.includes
over the entries, with no lower-casing and no allocation. The host is matched beside the haystack, and only while more than one host is
listed (SPEC section 7 shows it only then).

Every entry also remembers whether it matched, and for which generation of the filter: an
entry is tested at most once per filter change, and when a query only narrows the previous
one (each old word is part of a new word, e.g. "fi" -> "fix"), an entry that failed the
previous query is not tested again.
*/

import { agentLabel, projectKey } from './format.js';

/** The words of a query, lower-cased; a row must contain every one of them. */
export function parseQuery(query) {
  return String(query || '').toLowerCase().split(/\s+/).filter(Boolean);
}

/** What a session is found by, lower-cased (the host is matched separately); a field
 * that repeats an earlier one (a title that is the prompt, a single prompt) is kept once. */
export function haystack(session) {
  const fields = [session.title, session.projectPath, session.projectDir, session.firstPrompt, session.lastPrompt,
    session.gitBranch, session.model, session.id, agentLabel(session.source)];
  return fields.filter((f, i) => f && fields.indexOf(f) === i).join('\n').toLowerCase();
}

/** Build the entry's haystack now (idle time), so that the next keystroke only compares. */
export function prepare(entry) {
  if (entry.hay === null) entry.hay = haystack(entry.session);
}

/** Forget what an entry was found by: its session changed. */
export function invalidate(entry) {
  entry.hay = null;
  entry.hostHay = null;
  entry.matchGen = -1;
}

/** Every match of ``next`` is a match of ``prev``: each old word is contained in a new word. */
function narrows(prev, next) {
  return prev.every((word) => next.some((w) => w.includes(word)));
}

/** The list's filter: search words, one project, one agent, one host. */
export class Filter {
  constructor() {
    this.terms = [];
    this.project = '';
    this.agent = '';
    this.host = '';
    this.withHost = false;
    this.gen = 0; // bumps on every change; entries cache their result per generation
    this.narrowing = false; // this generation only narrows the previous one
  }

  /** Take new values; false when nothing changed. */
  set({ query, project, agent, host }, withHost) {
    const terms = parseQuery(query);
    project = project || '';
    agent = agent || '';
    host = host || '';
    const same = (a, b) => a.length === b.length && a.every((t, i) => t === b[i]);
    const sameRest = project === this.project && agent === this.agent && host === this.host &&
      withHost === this.withHost;
    if (same(terms, this.terms) && sameRest) return false;
    this.narrowing = sameRest && narrows(this.terms, terms);
    this.terms = terms;
    this.project = project;
    this.agent = agent;
    this.host = host;
    this.withHost = withHost;
    this.gen += 1;
    return true;
  }

  /** Anything narrows the list. */
  get active() {
    return Boolean(this.terms.length || this.project || this.agent || this.host);
  }

  /** Whether the entry's session is shown (cached on the entry for this generation). */
  test(entry) {
    if (entry.matchGen === this.gen) return entry.match;
    let ok;
    if (this.narrowing && entry.matchGen === this.gen - 1 && !entry.match) ok = false;
    else ok = this.compute(entry);
    entry.match = ok;
    entry.matchGen = this.gen;
    return ok;
  }

  compute(entry) {
    const s = entry.session;
    if (this.project && projectKey(s) !== this.project) return false;
    if (this.agent && s.source !== this.agent) return false;
    if (this.host && s.host !== this.host) return false;
    const terms = this.terms;
    if (!terms.length) return true;
    if (entry.hay === null) entry.hay = haystack(s);
    const hay = entry.hay;
    if (this.withHost && s.host && entry.hostHay === null) entry.hostHay = String(s.host).toLowerCase();
    const host = this.withHost && s.host ? entry.hostHay : '';
    for (let i = 0; i < terms.length; i++) {
      if (!hay.includes(terms[i]) && !(host && host.includes(terms[i]))) return false;
    }
    return true;
  }
}
