"""What of a conversation's message is searchable: four fields, from its (masked) blocks.

A message is the source-independent shape every Conversation pages out
(helm_monitor.sources.base.Conversation): its texts are masked and clipped there
already, so nothing here sees a secret or a 50 MB tool output.
"""

from __future__ import annotations

# The columns of the index, in order; default searches leave tool results out (they are
# most of the text and mostly noise: file contents, command output).
COLUMNS = ("text", "thinking", "tool_input", "tool_result")
DEFAULT_COLUMNS = ("text", "thinking", "tool_input")
FIELD_MAX = 64 * 1024


def fields_of(message: dict) -> tuple[str, str, str, str] | None:
    """``(text, thinking, tool_input, tool_result)`` of one message, or None when it has no words."""
    parts: dict[str, list[str]] = {c: [] for c in COLUMNS}
    for block in message.get("blocks") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts["text"].append(_s(block.get("text")))
        elif kind == "thinking":
            parts["thinking"].append(_s(block.get("text")))
        elif kind == "tool_use":
            parts["tool_input"].append(f"{_s(block.get('name'))} {_s(block.get('input'))}")
        elif kind == "tool_result":
            parts["tool_result"].append(_s(block.get("text")))
    out = tuple("\n".join(p for p in parts[c] if p)[:FIELD_MAX] for c in COLUMNS)
    return out if any(out) else None


def _s(value) -> str:
    return value if isinstance(value, str) else ""
