"""What one transcript record means for the session list.

Claude Code's records are not a documented interface: every accessor here
checks types and treats anything unexpected as absent.

A record is decoded straight into :class:`Record`, which names only the fields
the session list reads: everything else in the line (tool inputs and results,
API request copies, the duplicated ``toolUseResult``) is stepped over by the
decoder without building Python objects for it, about twice as fast as
decoding the whole record. A line that does not fit that shape (a field of an
unexpected type, not an object, not JSON) is decoded as a whole and read
leniently (:func:`from_dict`), as are records recovered from torn lines.
"""

from __future__ import annotations

from typing import Union

import msgspec

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


class Block(msgspec.Struct, gc=False):
    """A content block: what tells a prompt's text from a tool result."""
    type: Union[str, None] = None
    text: Union[str, None] = None


class Usage(msgspec.Struct, gc=False):
    input_tokens: Union[int, None] = None
    output_tokens: Union[int, None] = None
    cache_read_input_tokens: Union[int, None] = None
    cache_creation_input_tokens: Union[int, None] = None


class Message(msgspec.Struct, gc=False):
    id: Union[str, None] = None
    model: Union[str, None] = None
    usage: Union[Usage, None] = None
    content: Union[str, list[Block], None] = None


class Origin(msgspec.Struct, gc=False):
    kind: Union[str, None] = None


class Record(msgspec.Struct, gc=False):
    """The fields of a record the session list reads (SPEC 5); any of them may be absent."""
    type: Union[str, None] = None
    timestamp: Union[str, None] = None
    cwd: Union[str, None] = None
    sessionId: Union[str, None] = None
    gitBranch: Union[str, None] = None
    version: Union[str, None] = None
    isSidechain: Union[bool, None] = None
    isMeta: Union[bool, None] = None
    origin: Union[Origin, None] = None
    message: Union[Message, None] = None
    summary: Union[str, None] = None
    aiTitle: Union[str, None] = None
    customTitle: Union[str, None] = None
    agentName: Union[str, None] = None


_decode = msgspec.json.Decoder(Record).decode
_MSGSPEC_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def decode(line) -> Record | None:
    """The record on ``line`` (bytes-like), or None if it is not of the usual shape (see :func:`from_dict`)."""
    try:
        return _decode(line)
    except _MSGSPEC_ERRORS:
        return None


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value) -> bool | None:
    return value if isinstance(value, bool) else None


def from_dict(rec: dict) -> Record:
    """A decoded record of any shape, read leniently: a field of an unexpected type counts as absent."""
    message = rec.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, list):
            content = [Block(_str(b.get("type")), _str(b.get("text"))) for b in content if isinstance(b, dict)]
        elif not isinstance(content, str):
            content = None
        usage = message.get("usage")
        if isinstance(usage, dict):
            usage = Usage(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")),
                          as_int(usage.get("cache_read_input_tokens")),
                          as_int(usage.get("cache_creation_input_tokens")))
        else:
            usage = None
        message = Message(_str(message.get("id")), _str(message.get("model")), usage, content)
    else:
        message = None
    origin = rec.get("origin")
    origin = Origin(_str(origin.get("kind"))) if isinstance(origin, dict) else None
    return Record(
        type=_str(rec.get("type")), timestamp=_str(rec.get("timestamp")), cwd=_str(rec.get("cwd")),
        sessionId=_str(rec.get("sessionId")), gitBranch=_str(rec.get("gitBranch")), version=_str(rec.get("version")),
        isSidechain=_bool(rec.get("isSidechain")), isMeta=_bool(rec.get("isMeta")), origin=origin, message=message,
        summary=_str(rec.get("summary")), aiTitle=_str(rec.get("aiTitle")), customTitle=_str(rec.get("customTitle")),
        agentName=_str(rec.get("agentName")))


def text_of(content) -> str | None:
    """The text of a message's content: a string, or the text blocks of a list.

    A list carrying any ``tool_result`` block is a tool result, not text.
    """
    if isinstance(content, str):
        return content
    if not content:
        return None
    parts = []
    for block in content:
        kind = block.type
        if kind == "tool_result":
            return None
        if kind == "text" and block.text is not None:
            parts.append(block.text)
    return "\n".join(parts) if parts else None


def prompt_of(record: Record) -> str | None:
    """The prompt a ``user`` record carries, or None if it is not a real prompt."""
    if record.isMeta is True or record.isSidechain is True:
        return None
    origin = record.origin
    if origin is not None and origin.kind in NOT_A_PROMPT_ORIGINS:
        return None
    message = record.message
    if message is None:
        return None
    text = text_of(message.content)
    if text is None:
        return None
    stripped = text.strip()
    if not stripped or stripped.startswith(NOT_A_PROMPT_PREFIXES):
        return None
    return stripped


def usage_of(message: Message) -> tuple[int, int, int, int]:
    """(input, output, cacheRead, cacheCreation) of an assistant message."""
    usage = message.usage
    if usage is None:
        return (0, 0, 0, 0)
    return (as_int(usage.input_tokens), as_int(usage.output_tokens), as_int(usage.cache_read_input_tokens),
            as_int(usage.cache_creation_input_tokens))
