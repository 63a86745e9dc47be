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

from helm_monitor.sources.text import INT_MAX, as_int, clip, collapse, str_or_none  # noqa: F401  (R.clip etc.)
from helm_monitor.usage.facts import TIER_STARTS, tier_of

TIER_FIRST = TIER_STARTS[0]  # prompts up to this many tokens are in no long-context tier

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


class CacheCreation(msgspec.Struct, gc=False):
    """The breakdown of cache writes: only the 1-hour part is needed (the rest are 5-minute writes)."""
    ephemeral_1h_input_tokens: Union[int, None] = None


class Usage(msgspec.Struct, gc=False):
    input_tokens: Union[int, None] = None
    output_tokens: Union[int, None] = None
    cache_read_input_tokens: Union[int, None] = None
    cache_creation_input_tokens: Union[int, None] = None
    cache_creation: Union[CacheCreation, None] = None
    speed: Union[str, None] = None


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
            cache = usage.get("cache_creation")
            cache = CacheCreation(as_int(cache.get("ephemeral_1h_input_tokens"))) if isinstance(cache, dict) else None
            usage = Usage(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")),
                          as_int(usage.get("cache_read_input_tokens")),
                          as_int(usage.get("cache_creation_input_tokens")), cache, _str(usage.get("speed")))
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


def counts_of(message: Message) -> tuple[int, int, int, int, int, bool]:
    """``(input, output, cacheRead, cacheCreation, of which 1-hour writes, fast mode)`` of an
    assistant message: what both ``tokens`` (SPEC 5) and the usage facts (SPEC 10) count.

    Inlined checks rather than :func:`as_int` per field: called for every assistant record."""
    usage = message.usage
    if usage is None:
        return 0, 0, 0, 0, 0, False
    inp, out, read, made = (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
                            usage.cache_creation_input_tokens)
    cache = usage.cache_creation
    hour = cache.ephemeral_1h_input_tokens if cache is not None else None
    return (inp if type(inp) is int and 0 <= inp < INT_MAX else 0,
            out if type(out) is int and 0 <= out < INT_MAX else 0,
            read if type(read) is int and 0 <= read < INT_MAX else 0,
            made if type(made) is int and 0 <= made < INT_MAX else 0,
            hour if type(hour) is int and 0 <= hour < INT_MAX else 0,
            usage.speed == "fast")


def usage_facts_of(message: Message) -> tuple[tuple[int, int, int, int, int], int, str]:
    """An assistant message's usage as a facts row counts it (helm_monitor.usage.facts):
    ``((input, output, cacheRead, cacheWrite5m, cacheWrite1h), tier, speed)``.

    The 1-hour part of the cache writes is the breakdown's; the rest of the total is 5-minute
    writes (so a breakdown of zeros under a total, as 2.1.330 writes for some requests, counts
    the total as 5-minute writes, the price Claude Code itself charges then)."""
    return facts_of(counts_of(message))


def facts_of(counts: tuple) -> tuple[tuple[int, int, int, int, int], int, str]:
    """:func:`usage_facts_of` from :func:`counts_of`'s answer."""
    inp, out, read, made, hour, fast = counts
    five = made - hour if made > hour else 0
    prompt = inp + read + five + hour
    return ((inp, out, read, five, hour), tier_of(prompt) if prompt > TIER_FIRST else 0, "fast" if fast else "")


# --------------------------------------------------------------------------- cost-state
class ModelCost(msgspec.Struct, gc=False):
    costUSD: Union[float, None] = None


class CostState(msgspec.Struct, gc=False):
    """A ``cost-state`` record: the running totals of one Claude Code process (``startTime``)."""
    type: Union[str, None] = None
    totalCostUSD: Union[float, None] = None
    startTime: Union[int, float, None] = None
    modelUsage: Union[dict[str, ModelCost], None] = None
    hasUnknownModelCost: Union[bool, None] = None


_decode_cost_state = msgspec.json.Decoder(CostState).decode


def _dollars(value) -> float | None:
    """A non-negative, finite amount of dollars, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < INT_MAX else None


def decode_cost_state(line) -> CostState | None:
    """The cost-state on ``line`` (bytes-like) if it has the usual shape, else None."""
    try:
        return _decode_cost_state(line)
    except _MSGSPEC_ERRORS:
        return None


def cost_state_from_dict(rec: dict) -> CostState:
    """A decoded cost-state of any shape, read leniently (a field of an unexpected type is absent)."""
    models = rec.get("modelUsage")
    if isinstance(models, dict):
        models = {k: ModelCost(_dollars(v.get("costUSD"))) for k, v in models.items()
                  if isinstance(k, str) and isinstance(v, dict)}
    else:
        models = None
    start = rec.get("startTime")
    return CostState(type=_str(rec.get("type")), totalCostUSD=_dollars(rec.get("totalCostUSD")),
                     startTime=start if isinstance(start, (int, float)) and not isinstance(start, bool) else None,
                     modelUsage=models, hasUnknownModelCost=_bool(rec.get("hasUnknownModelCost")))


def ledger_of(cs: CostState) -> tuple[float | None, dict[str, float]]:
    """``(total, {model: dollars})`` of a cost-state: its running totals, amounts checked. A
    cost-state without per-model figures charges its total to the model ``""``."""
    models = {}
    if cs.modelUsage:
        for model, cost in cs.modelUsage.items():
            usd = _dollars(cost.costUSD) if cost is not None else None
            if usd is not None:
                models[model] = usd
    total = _dollars(cs.totalCostUSD)
    if not models and total:
        models[""] = total
    return total, models
