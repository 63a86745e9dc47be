/* Masking of values that look like credentials (SPEC section 6; mirrors
 * helm_monitor/sources/redact.py). The server masks too: this is defence in depth. */

export const MASK = '\u2022\u2022\u2022\u2022\u2022\u2022';
const SECRET_PATTERNS = [
  [/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g,
    '-----BEGIN $1PRIVATE KEY-----' + MASK + '-----END $1PRIVATE KEY-----'],
  [/\b(sk-ant-(?:api|admin)\d{0,3}-|sk-ant-|sk-proj-|sk-)[A-Za-z0-9_-]{16,}/g, '$1' + MASK],
  [/\b(gh[pousr]_)[A-Za-z0-9]{20,}/g, '$1' + MASK],
  [/\b(github_pat_)[A-Za-z0-9_]{20,}/g, '$1' + MASK],
  [/\b(glpat-)[A-Za-z0-9_-]{16,}/g, '$1' + MASK],
  [/\b((?:AKIA|ASIA)[0-9A-Z]{4})[0-9A-Z]{12}\b/g, '$1' + MASK],
  [/\b(xox[abposr]-)[A-Za-z0-9-]{10,}/g, '$1' + MASK],
  [/\b(AIza)[0-9A-Za-z_-]{30,}/g, '$1' + MASK],
  [/\b(npm_)[A-Za-z0-9]{30,}/g, '$1' + MASK],
  [/\b(hf_)[A-Za-z0-9]{30,}/g, '$1' + MASK],
  [/\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, '$1' + MASK],
  // Authorization headers: whatever follows the header name and scheme.
  [/\b(authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest)\s+)?)[A-Za-z0-9._~+/=-]{8,}/gi, '$1' + MASK],
  // A scheme word elsewhere: only a random-looking value (a digit or a case change), so
  // prose such as "basic understanding" stays as written.
  [/\b((?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)\s+)(?=[A-Za-z0-9._~+/=-]*(?:[0-9]|[a-z][A-Z]))[A-Za-z0-9._~+/=-]{12,}/g,
    '$1' + MASK],
  // Passwords in URLs: scheme://user:password@host (the user may be empty).
  [/(\b[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/g, '$1' + MASK + '@'],
  [/\b((?:[a-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret))["']?\s*[:=]\s*["']?)([^\s"',;]{6,})/gi,
    '$1' + MASK],
];

export function maskSecrets(text) {
  if (text === null || text === undefined) return '';
  let out = String(text);
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

