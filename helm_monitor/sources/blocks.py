"""Message blocks every source's conversation shares: diffs, images, and what is not understood.

A conversation (helm_monitor.sources.base.Conversation) pages out blocks the page renders.
Beside text, thinking, tool calls and results, these are:

- a diff (``patch``): hunks ``{"oldStart", "oldLines", "newStart", "newLines", "lines"}``, each
  line ``" ctx"``, ``"-old"`` or ``"+new"``, masked and clipped; at most :data:`PATCH_LINES_MAX`
  lines (and :data:`PATCH_CHARS_MAX` characters) in all, ``patchTruncated`` saying whether
  some were left out. Taken from the agent's own hunks (:func:`clean_patch`, Claude Code's
  ``structuredPatch``) or computed from an edit's strings (:func:`diff_patch`);
- an image: ``{"type": "image", "mediaType", "bytes"}`` (the decoded size), never its data;
- anything a reader does not know: ``{"type": "unknown", "kind", "raw"}``, the part as JSON
  with base64 payloads replaced by ``[base64, N bytes]``, masked and clipped, so the page can
  show it rather than drop it.
"""

from __future__ import annotations

import difflib
import json
import re

from helm_monitor.sources.redact import MASK, redact_clipped

PATCH_LINES_MAX = 1_000
PATCH_LINE_MAX = 2_000
# Beside the line count, so that a thousand lines of 2,000 characters are not 2 MB per block.
PATCH_CHARS_MAX = 100_000
# An edit's strings are cut to this before they are diffed (the diff costs their size).
DIFF_INPUT_MAX = 20_000
# Lines of the changed middles multiplied: past this an edit is not aligned line by line (about
# 0.1 s of difflib at worst at this size; seconds at 20,000 characters of short lines).
DIFF_WORK_MAX = 1_000_000
_CONTEXT = 3
RAW_MAX = 4_000
KIND_MAX = 100
PATH_MAX = 1_000
_INT_MAX = 1 << 31

_HUNK_RE = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_KEY_END = "-----END "
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=_\-\r\n]*")
_DATA_URL_RE = re.compile(r"data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)?((?:;[^,;]*)*);base64,", re.I)
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9.+-]{1,64}/[A-Za-z0-9.+-]{1,64}")
# A string this long made of base64's alphabet only is an encoded payload wherever it is.
_BLOB_MIN = 200
_SAMPLE = 1024
# Keys whose string value is a payload, not text (Anthropic's ``source.data``, Gemini's
# ``inlineData.data``, ``redacted_thinking``'s ``data``).
_PAYLOAD_KEYS = frozenset({"data", "base64", "bytes"})
_PAYLOAD_MIN = 32
# Copying a part for its JSON stops at this many characters (only RAW_MAX are shown; the rest
# is a margin for masking, helm_monitor.sources.redact) and this depth.
_RAW_BUDGET = RAW_MAX + 8_192
_RAW_DEPTH = 24
_CUT = "\u2026"


# -------------------------------------------------------------------- base64 and images
def base64_size(data: str) -> int:
    """The number of bytes ``data`` (base64) decodes to; line breaks are left out of the count in
    all but payloads of megabytes (then it is an estimate, never read whole)."""
    n = len(data)
    if n <= 1 << 20:
        n -= data.count("\n") + data.count("\r") + data.count(" ")
    pad = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    return max(0, n * 3 // 4 - pad)


def _looks_base64(value: str) -> bool:
    # Judged by its ends: a payload of megabytes is not scanned whole to be shown as its size.
    if len(value) > 2 * _SAMPLE:
        return _BASE64_RE.fullmatch(value, 0, _SAMPLE) is not None and \
            _BASE64_RE.fullmatch(value, len(value) - _SAMPLE) is not None
    return _BASE64_RE.fullmatch(value) is not None


def data_url(value) -> tuple[str | None, int] | None:
    """``(media type, decoded size)`` of a ``data:...;base64,...`` URL, or None for anything else."""
    if not isinstance(value, str):
        return None
    m = _DATA_URL_RE.match(value)
    if m is None:
        return None
    return media_type(m.group(1)), base64_size(value[m.end():])


def media_type(value) -> str | None:
    """A media type (``image/png``) as given, or None when it is not one."""
    if isinstance(value, str) and _MEDIA_TYPE_RE.fullmatch(value):
        return value.lower()
    return None


def image_block(mime=None, data=None, size: int | None = None) -> dict:
    """``{"type": "image", "mediaType", "bytes"}``: what a placeholder needs, never the data.
    ``data``: the base64 payload (or a data URL), when there is one to measure."""
    mt = media_type(mime)
    if size is None and isinstance(data, str):
        url = data_url(data)
        if url is not None:
            mt = mt or url[0]
            size = url[1]
        elif _looks_base64(data):
            size = base64_size(data)
    return {"type": "image", "mediaType": mt, "bytes": size}


# -------------------------------------------------------------------- unknown parts
def unknown_block(kind, value) -> dict:
    """A part no reader knows, shown as JSON: base64 payloads replaced, masked, clipped to RAW_MAX."""
    kind = redact_clipped(kind, KIND_MAX)[0] if isinstance(kind, str) and kind else None
    return {"type": "unknown", "kind": kind, "raw": raw_json(value)}


def raw_json(value) -> str:
    budget = [_RAW_BUDGET]
    shrunk = _shrink(value, None, budget, 0)
    try:
        text = json.dumps(shrunk, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):  # e.g. a float NaN from a lenient decoder: shown as Python sees it
        text = repr(shrunk)
    return redact_clipped(text, RAW_MAX)[0]


def _placeholder(value: str) -> str | None:
    url = _DATA_URL_RE.match(value)
    if url is not None:
        return f"[base64, {base64_size(value[url.end():])} bytes]"
    if len(value) >= _BLOB_MIN and _looks_base64(value):
        return f"[base64, {base64_size(value)} bytes]"
    return None


def _shrink(value, key, budget: list, depth: int):
    """A copy of ``value`` whose JSON is about ``budget`` characters at most, payloads replaced."""
    if budget[0] <= 0:
        return _CUT
    if isinstance(value, str):
        if key in _PAYLOAD_KEYS and len(value) >= _PAYLOAD_MIN and _looks_base64(value):
            out = f"[base64, {base64_size(value)} bytes]"
        else:
            out = _placeholder(value) or value[: budget[0]]
        budget[0] -= len(out) + 4
        return out
    if value is None or isinstance(value, (bool, int, float)):
        budget[0] -= 8
        return value
    if depth >= _RAW_DEPTH:
        budget[0] -= 1
        return _CUT
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if budget[0] <= 0:
                out[_CUT] = _CUT
                break
            k = str(k)[:KIND_MAX]
            budget[0] -= len(k) + 4
            out[k] = _shrink(v, k, budget, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            if budget[0] <= 0:
                out.append(_CUT)
                break
            out.append(_shrink(v, None, budget, depth + 1))
        return out
    out = str(value)[: budget[0]]
    budget[0] -= len(out) + 4
    return out


# -------------------------------------------------------------------- diffs
class _Patch:
    """Hunks taken in, line by line, masked, clipped and bounded."""

    def __init__(self):
        self.hunks: list[dict] = []
        self.lines = 0
        self.chars = 0
        self.truncated = False
        self._in_key = False  # inside a private key block (its lines are masked whole)

    @property
    def full(self) -> bool:
        return self.lines >= PATCH_LINES_MAX or self.chars >= PATCH_CHARS_MAX

    def hunk(self, old_start: int, old_lines: int, new_start: int, new_lines: int) -> list[str] | None:
        """Start a hunk; the list its lines go to, or None (and truncated) when the patch is full."""
        if self.full:
            self.truncated = True
            return None
        lines: list[str] = []
        self.hunks.append({"oldStart": old_start, "oldLines": old_lines, "newStart": new_start,
                           "newLines": new_lines, "lines": lines})
        return lines

    def line(self, out: list[str], line: str) -> bool:
        """Add one line to the hunk ``out``; False (and truncated) when the patch is full."""
        if self.full:
            self.truncated = True
            return False
        out.append(self._mask(line))
        self.lines += 1
        self.chars += len(out[-1])
        return True

    def _mask(self, line: str) -> str:
        # Lines are masked one by one, so a private key's body (lines of base64 between its
        # BEGIN and END lines) matches no pattern alone: the lines between are masked here.
        if self._in_key:
            end = line.find(_KEY_END)
            if end < 0:
                return line[:1] + MASK
            self._in_key = False
            line = line[:1] + (MASK if line[1:end].strip() else "") + line[end:]
        else:
            begin = _KEY_BEGIN.search(line)
            if begin is not None and _KEY_END not in line[begin.end():]:
                self._in_key = True
        return redact_clipped(line, PATCH_LINE_MAX)[0]

    def result(self) -> dict:
        return {"patch": self.hunks, "patchTruncated": self.truncated}


def _count(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _INT_MAX:
        return value
    return None


def clean_patch(hunks) -> dict | None:
    """``{"patch", "patchTruncated"}`` from an agent's hunks (Claude Code's ``structuredPatch``),
    or None when there are none or they are not of the expected shape (then nothing is shown)."""
    if not isinstance(hunks, list) or not hunks:
        return None
    patch = _Patch()
    for h in hunks:
        if not isinstance(h, dict):
            return None
        counts = [_count(h.get(k)) for k in ("oldStart", "oldLines", "newStart", "newLines")]
        lines = h.get("lines")
        if None in counts or not isinstance(lines, list):
            return None
        out = patch.hunk(*counts)
        if out is None:
            break
        for line in lines:
            if not isinstance(line, str):
                return None
            if not patch.line(out, line):
                break
        if patch.truncated:
            break
    return patch.result()


def diff_patch(pairs) -> dict | None:
    """``{"patch", "patchTruncated"}`` of edits ``[(old, new), ...]`` (difflib, three lines of
    context), line numbers relative to each pair's strings (from 1); None when nothing changes."""
    patch = _Patch()
    for old, new in pairs:
        if not isinstance(old, str) or not isinstance(new, str):
            continue
        cut = len(old) > DIFF_INPUT_MAX or len(new) > DIFF_INPUT_MAX
        old, new = old[:DIFF_INPUT_MAX], new[:DIFF_INPUT_MAX]
        if old != new:
            _diff_into(patch, old.splitlines(), new.splitlines())
        if cut:
            patch.truncated = True
        if patch.truncated:
            break
    return patch.result() if patch.hunks else None


def _diff_into(patch: _Patch, a: list[str], b: list[str]) -> None:
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) - head and tail < len(b) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    if (len(a) - head - tail) * (len(b) - head - tail) > DIFF_WORK_MAX:
        # Aligning this much costs seconds (difflib is quadratic at worst): shown as one
        # replacement instead, right but not minimal.
        lo, hi_a, hi_b = max(0, head - _CONTEXT), len(a) - tail, len(b) - tail
        end_a, end_b = min(len(a), hi_a + _CONTEXT), min(len(b), hi_b + _CONTEXT)
        out = patch.hunk(lo + 1, end_a - lo, lo + 1, end_b - lo)
        lines = ([" " + x for x in a[lo:head]], ["-" + x for x in a[head:hi_a]], ["+" + x for x in b[head:hi_b]],
                 [" " + x for x in a[hi_a:end_a]])
        for part in lines:
            for line in part:
                if out is None or not patch.line(out, line):
                    return
        return
    out = None
    for n, line in enumerate(difflib.unified_diff(a, b, lineterm="", n=_CONTEXT)):
        if n < 2:  # the ---/+++ header
            continue
        if line.startswith("@@"):
            m = _HUNK_RE.match(line)
            if m is None:
                return
            s1, n1 = int(m.group(1)), 1 if m.group(2) is None else int(m.group(2))
            s2, n2 = int(m.group(3)), 1 if m.group(4) is None else int(m.group(4))
            # difflib names an empty range by the line before it (0 for "before line 1");
            # the hunks agents write (jsdiff's structuredPatch) by the line after it.
            out = patch.hunk(s1 + (n1 == 0), n1, s2 + (n2 == 0), n2)
            if out is None:
                return
        elif out is None or not patch.line(out, line):
            return


def edit_pairs(tool_input) -> list[tuple[str, str]] | None:
    """The ``(old, new)`` strings of an edit tool's input: ``old_string``/``new_string``, or
    ``edits: [{old_string, new_string}, ...]`` (MultiEdit); None for any other input."""
    if not isinstance(tool_input, dict):
        return None
    if isinstance(tool_input.get("old_string"), str) and isinstance(tool_input.get("new_string"), str):
        return [(tool_input["old_string"], tool_input["new_string"])]
    edits = tool_input.get("edits")
    if isinstance(edits, list):
        pairs = [(e["old_string"], e["new_string"]) for e in edits
                 if isinstance(e, dict) and isinstance(e.get("old_string"), str)
                 and isinstance(e.get("new_string"), str)]
        return pairs or None
    return None


def masked_path(value) -> str | None:
    return redact_clipped(value, PATH_MAX)[0] if isinstance(value, str) and value else None
