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
    # Authorization headers: whatever follows the header name and scheme.
    (re.compile(r"""(?i)\b(authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest)\s+)?)"""
                r"[A-Za-z0-9._~+/=\-]{8,}"), r"\1" + MASK),
    # A scheme word and a token elsewhere: the token must look random (a digit, or a
    # lower-to-upper case change), or "basic understanding" would be masked.
    (re.compile(r"\b((?i:bearer|basic|token)\s+)(?=[A-Za-z0-9._~+/=\-]*(?:[0-9]|[a-z][A-Z]))"
                r"[A-Za-z0-9._~+/=\-]{12,}"), r"\1" + MASK),
    # Passwords in URLs: scheme://user:password@host (the user may be empty)
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1" + MASK + "@"),
    # key=value / key: value assignments of secret-looking names
    # (No leading "\b[a-z0-9_-]*": a name's head is left as it is either way, and that prefix
    # made the engine try a match at every word.)
    (re.compile(r"""(?i)((?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|client[_\-]?secret)["']?\s*[:=]\s*["']?)([^\s"',;]{6,})"""),
     r"\1" + MASK),
]
# What each pattern above needs (lower case, one of): a pattern runs only over text holding it.
_NEEDS: list[tuple[str, ...]] = [
    ("-----begin",), ("sk-",), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), ("github_pat_",), ("glpat-",),
    ("akia", "asia"), ("xox",), ("aiza",), ("npm_",), ("hf_",), ("eyj",), ("authorization",),
    ("bearer", "basic", "token"), ("://",), ("passw", "secret", "token", "api", "access", "private"),
]
assert len(_NEEDS) == len(_PATTERNS)


# Every pattern above needs one of these (case aside): text without any, most
# prompts and titles, is returned after one pass instead of fourteen.
_TRIGGERS = re.compile(r"(?i)-----BEGIN|sk-|gh[pousr]_|github_pat_|glpat-|AKIA|ASIA|xox[abposr]-|AIza|npm_|hf_|eyJ"
                       r"|authorization|bearer|basic|token|://|passw|secret|api[_\-]?key|access[_\-]?key|private[_\-]?key")


def redact(text: str) -> str:
    """``text`` with credential-looking values masked."""
    if not text or _TRIGGERS.search(text) is None:
        return text
    lower = text.lower()
    for (pattern, replacement), needs in zip(_PATTERNS, _NEEDS):
        if any(n in lower for n in needs):
            text = pattern.sub(replacement, text)
    return text


# Masking before clipping looks this far past the limit, so that a secret the
# limit would cut is seen whole (and masked) rather than shown in part.
_CLIP_MARGIN = 4096


def redact_head(text: str, limit: int) -> tuple[str, bool]:
    """The start of ``text``, masked, at least ``limit`` characters of it when it is that long;
    and whether ``text`` went on past what is returned.

    For text that will be shown cut to ``limit``: mask first, then cut. Cut first, a
    secret straddling the limit could be left too short for its pattern and shown in
    part. Only a window past the limit is masked (a 50 MB tool result is not scanned
    whole), and its last part, where the window itself may cut a secret, is dropped.
    """
    if len(text) <= limit + _CLIP_MARGIN:
        return redact(text), False
    masked = redact(text[: limit + _CLIP_MARGIN])
    return masked[: max(0, len(masked) - _CLIP_MARGIN // 2)], True


def redact_clipped(text: str, limit: int, ellipsis: str = "\u2026") -> tuple[str, bool]:
    """``text`` masked, then cut to ``limit`` characters plus ``ellipsis``; and whether it was cut."""
    masked, cut = redact_head(text, limit)
    if len(masked) > limit:
        masked, cut = masked[:limit], True
    return (masked + ellipsis if cut else masked), cut
