/* The page's settings: where the API lives, and the query parameters that tune timing.
 *
 * Query parameters (all optional, all kept in bookmarks):
 *   q=<text>         search as you type
 *   project=<path>   show one project only
 *   agent=<source>   show one agent's sessions only (claude-code, codex, opencode, gemini)
 *   host=<name>      show one host's sessions only (team mode: SPEC section 9)
 *   session=<key>    the open session view, by the session's key (<host>:<source>:<id>). A
 *                    value without ':' is a Claude Code id from a first-version bookmark: it is
 *                    resolved to its key and the address rewritten (history.replaceState)
 *   backoff=<ms>     first stream reconnect delay (default 1000, at least 20). The delay
 *                    doubles per failed attempt up to 16x that value (at most 30 s), with
 *                    jitter. Tests use a small value so the fallback happens quickly.
 *   poll=<ms>        polling interval once the stream has failed 5 times (default 4000,
 *                    at least 100)
 */

export const params = new URLSearchParams(location.search);

function numberParam(name, fallback, min, max) {
  const value = Number.parseInt(params.get(name) || '', 10);
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
}

export const BACKOFF_BASE_MS = numberParam('backoff', 1000, 20, 30000);
export const BACKOFF_MAX_MS = Math.min(30000, BACKOFF_BASE_MS * 16);
export const POLL_INTERVAL_MS = numberParam('poll', 4000, 100, 60000);
// SPEC section 7: after this many failed attempts the page polls /all.
export const ATTEMPTS_BEFORE_POLLING = 5;
// Slower polling once the server said we may not read (no hot loop on 401/403).
export const AUTH_RETRY_MS = 30000;

export const ROOT = document.body.dataset.root || '/';
// Every agent's sessions, each named by its key (<host>:<source>:<id>).
export const API = ROOT + 'api/sessions';
// Claude Code only, named by the agent's own id: resolves first-version bookmarks.
export const CLAUDE_API = ROOT + 'api/claude-sessions';
export const BASE_TITLE = 'helm-monitor';
