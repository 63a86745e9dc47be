"""Mask values that look like credentials before any transcript text is shown.

Transcripts hold secrets: keys pasted into prompts, tokens printed by tools,
passwords in URLs. Masking keeps a short recognisable prefix so a reader
can tell what kind of secret was there.
"""

from __future__ import annotations

import re

MASK = "\u2022\u2022\u2022\u2022\u2022\u2022"  # ••••••

_PATTERNS: list[tuple[re.Pattern, str]] = [
    # Private key blocks
    (re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)"),
     r"-----BEGIN \1PRIVATE KEY-----" + MASK + r"-----END \1PRIVATE KEY-----"),
    # Vendor API keys and tokens: keep the vendor prefix.
    (re.compile(r"\b(sk-ant-(?:api|admin)\d{0,3}-|sk-ant-|sk-proj-|sk-)[A-Za-z0-9_\-]{16,}"), r"\1" + MASK),
    (re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{20,}"), r"\1" + MASK),
    (re.compile(r"\b(github_pat_)[A-Za-z0-9_]{20,}"), r"\1" + MASK),
    (re.compile(r"\b(glpat-)[A-Za-z0-9_\-]{16,}"), r"\1" + MASK),
    (re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{4})[0-9A-Z]{12}\b"), r"\1" + MASK),
    (re.compile(r"\b(xox[abposr]-)[A-Za-z0-9\-]{10,}"), r"\1" + MASK),
    (re.compile(r"\b(AIza)[0-9A-Za-z_\-]{30,}"), r"\1" + MASK),
    (re.compile(r"\b(npm_)[A-Za-z0-9]{30,}"), r"\1" + MASK),
    (re.compile(r"\b(hf_)[A-Za-z0-9]{30,}"), r"\1" + MASK),
    (re.compile(r"\b(eyJ)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), r"\1" + MASK),
    # Authorization headers
    (re.compile(r"\b((?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{12,}", re.IGNORECASE), r"\1" + MASK),
    # Passwords in URLs: scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@"), r"\1" + MASK + "@"),
    # key=value / key: value assignments of secret-looking names
    (re.compile(r"""(?i)\b((?:[a-z0-9_\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|client[_\-]?secret))["']?\s*[:=]\s*["']?)([^\s"',;]{6,})"""),
     r"\1" + MASK),
]


def redact(text: str) -> str:
    """``text`` with credential-looking values masked."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
