"""What one transcript record means for the session list.

Claude Code's records are not a documented interface: every accessor here
checks types and treats anything unexpected as absent.
"""

from __future__ import annotations

from helm_monitor.sources.text import as_int, clip, collapse, str_or_none  # noqa: F401  (R.clip etc.)

# A user record whose text starts with one of these is injected by Claude Code
# (slash-command echoes, shell output, system reminders, background-task
# notices), not typed by the user.
NOT_A_PROMPT_PREFIXES = ("<command-", "<local-command-", "<bash-", "<system-", "<task-notification",
                         "[Request interrupted by user")
# ``origin.kind`` of user records Claude Code writes itself (2.1.330 marks a
# background-task notice so, whatever its text).
NOT_A_PROMPT_ORIGINS = frozenset({"task-notification"})

FIRST_PROMPT_MAX = 200
TITLE_PROMPT_MAX = 120


def text_of(content) -> str | None:
    """The text of a message's content: a string, or the text blocks of a list.

    A list carrying any ``tool_result`` block is a tool result, not text.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            return None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts) if parts else None


def prompt_of(record: dict) -> str | None:
    """The prompt a ``user`` record carries, or None if it is not a real prompt."""
    if record.get("isMeta") is True or record.get("isSidechain") is True:
        return None
    origin = record.get("origin")
    if isinstance(origin, dict) and origin.get("kind") in NOT_A_PROMPT_ORIGINS:
        return None
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    text = text_of(message.get("content"))
    if text is None:
        return None
    stripped = text.strip()
    if not stripped or stripped.startswith(NOT_A_PROMPT_PREFIXES):
        return None
    return stripped


def usage_of(message: dict) -> tuple[int, int, int, int]:
    """(input, output, cacheRead, cacheCreation) of an assistant message."""
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return (0, 0, 0, 0)
    return (
        as_int(usage.get("input_tokens")),
        as_int(usage.get("output_tokens")),
        as_int(usage.get("cache_read_input_tokens")),
        as_int(usage.get("cache_creation_input_tokens")),
    )
