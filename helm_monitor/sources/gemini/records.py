"""What Gemini CLI's chat records mean for the session list, replayed the CLI's way.

A chat file (``tmp/<slug>/chats/session-*.jsonl``, Gemini CLI 0.39+) is a log:
a metadata line, message records, ``{"$set": {...}}`` updates and
``{"$rewindTo": id}`` records. The CLI's own reader (``loadConversationRecord``
in ``packages/core/src/services/chatRecordingService.ts``) replays it into an
ordered id -> message map: a message written again (tokens and tool calls
arrive so) replaces its earlier copy in place, ``$set.messages`` replaces the
whole list, ``$rewindTo`` drops that message and everything after it (all of
them when the id is unknown).

:class:`ChatState` replays the same way but keeps, per message, only the
few facts the session list needs (:class:`Facts`), never the content, and
keeps the totals (prompts, replies, tokens) up to date as messages come and go.
Nothing here checks more than types: an unexpected shape counts as absent.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from helm_monitor.sources.redact import redact_head
from helm_monitor.sources.text import as_int, collapse, masked_clip, str_or_none
from helm_monitor.usage.facts import UsageFacts, ms_of, tier_of

PROMPT_MAX = 200
# Of a prompt, this much is kept (unmasked, in memory only) and masked when shown: masking every
# prompt of a long history as it is read would cost more than reading it. The margin lets a
# secret that straddles PROMPT_MAX be seen whole by the masking.
PROMPT_KEEP = PROMPT_MAX + 256
TITLE_PROMPT_MAX = 120
SUMMARY_MAX = 500  # a summary is one line; a runaway one is cut
# isIgnoredUserContent (packages/core/src/utils/sessionUtils.ts): not typed as a prompt.
IGNORED_PREFIXES = ("/", "?", "<session_context>", "<hook_context>")
# Tool call states in which the turn is still going (packages/core/src/scheduler/types.ts).
PENDING_TOOL_STATUSES = frozenset({"validating", "scheduled", "executing", "awaiting_approval"})
NOTICE_TYPES = frozenset({"info", "error", "warning"})
_VERSIONS = itertools.count(1)

# Kinds of message.
PROMPT = 0  # a user record with real text
USER = 1  # a user record the CLI ignores (injected context, a /command, empty)
TOOL_RESULT = 2  # a user record carrying functionResponse parts only
REPLY = 3  # a gemini record
NOTICE = 4  # info / error / warning written by the CLI itself
OTHER = 5  # a type this reader does not know

def part_text(content) -> str:
    """``partListUnionToString``: the text parts of a content value, joined (other parts are '')."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part_text(p) for p in content if isinstance(p, (str, dict)))
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    return ""


def _has_function_response(content) -> bool:
    if isinstance(content, dict):
        return isinstance(content.get("functionResponse"), dict)
    if isinstance(content, list):
        return any(isinstance(p, dict) and isinstance(p.get("functionResponse"), dict) for p in content)
    return False


def prompt_text(text: str) -> str:
    """A prompt as shown: masked first (a secret the cut would split is masked whole), then cut."""
    return masked_clip(text, PROMPT_MAX)


def masked_summary(value) -> str | None:
    text = str_or_none(value)
    if text is None or not text.strip():
        return None
    return collapse(redact_head(text, SUMMARY_MAX)[0], SUMMARY_MAX)


def tokens_of(value) -> tuple[int, int, int] | None:
    """(input, output, cacheRead) of a gemini record's ``tokens`` (the API's usageMetadata): input is
    the prompt less its cached part, plus the tool-use prompt (``tool``: built-in tools' prompts,
    outside ``input`` and billed as input); output is the reply plus thoughts (Google bills
    thinking as output)."""
    if not isinstance(value, dict):
        return None
    cached = as_int(value.get("cached"))
    return (max(as_int(value.get("input")) - cached, 0) + as_int(value.get("tool")),
            as_int(value.get("output")) + as_int(value.get("thoughts")), cached)



def _tokens5(tokens: tuple[int, int, int]) -> tuple[int, int, int, int, int]:
    return (tokens[0], tokens[1], tokens[2], 0, 0)  # Gemini reports no cache writes


class Facts:
    """What the session list needs of one message."""
    __slots__ = ("kind", "prompt", "tokens", "model", "pending")

    def __init__(self, kind: int, prompt: str | None = None, tokens: tuple | None = None,
                 model: str | None = None, pending: bool = False):
        self.kind = kind
        self.prompt = prompt  # the head of a PROMPT's text (PROMPT_KEEP), masked when shown
        self.tokens = tokens
        self.model = model
        self.pending = pending  # a tool call is still scheduled / executing / awaiting approval


def facts_of(msg: dict) -> Facts:
    kind = msg.get("type")
    if kind == "user":
        content = msg.get("content")
        text = part_text(content).strip()
        if text and not text.startswith(IGNORED_PREFIXES):
            return Facts(PROMPT, prompt=text[:PROMPT_KEEP])
        return Facts(TOOL_RESULT if _has_function_response(content) else USER)
    if kind == "gemini":
        calls = msg.get("toolCalls")
        pending = isinstance(calls, list) and any(
            isinstance(c, dict) and c.get("status") in PENDING_TOOL_STATUSES for c in calls)
        return Facts(REPLY, tokens=tokens_of(msg.get("tokens")), model=str_or_none(msg.get("model")),
                     pending=pending)
    if kind in NOTICE_TYPES:
        return Facts(NOTICE)
    return Facts(OTHER)


class ChatState:
    """One chat file replayed: its metadata, and id -> :class:`Facts` in the CLI's order."""

    __slots__ = ("session_id", "project_hash", "start_time", "last_updated", "summary", "kind",
                 "messages", "prompts", "replies", "tokens", "first_ts", "_derived", "metadata_lines", "usage",
                 "facts", "u_version")

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.project_hash: str | None = None
        self.start_time: str | None = None  # the first metadata line's (a resume appends another)
        self.last_updated: str | None = None  # the latest lastUpdated / message timestamp
        self.summary: str | None = None
        self.kind: str | None = None  # "main" or "subagent"
        self.messages: OrderedDict[str, Facts] = OrderedDict()
        self.prompts = 0
        self.replies = 0
        self.tokens = [0, 0, 0]
        self.first_ts: str | None = None
        self.metadata_lines = 0
        # reply id -> (tokens, model, ms of its timestamp or None) of its latest copy that had usage,
        # kept across checkpoints and rewinds (the tokens were spent)
        self.usage: dict[str, tuple] = {}
        # The same as usage facts (SPEC 10): every reply once, at its latest usage, at its time.
        self.facts = UsageFacts()
        self.u_version = next(_VERSIONS)  # a new value whenever ``facts`` changes
        self._derived: tuple | None = None

    # ---------------------------------------------------------------- records
    def record(self, rec: dict) -> int | None:
        """Replay one record (in the CLI's order of tests). Returns the kind of a message record,
        -1 for an unknown ``$`` operation, -2 for a record of no known shape, else None."""
        if isinstance(rec.get("$rewindTo"), str):
            self.rewind(rec["$rewindTo"])
        elif isinstance(rec.get("id"), str):
            return self.message(rec)
        elif isinstance(rec.get("$set"), dict):
            self.update(rec["$set"])
        elif isinstance(rec.get("sessionId"), str) and isinstance(rec.get("projectHash"), str):
            self.metadata(rec)
        elif any(isinstance(k, str) and k.startswith("$") for k in rec):
            return -1
        else:
            return -2
        return None

    def metadata(self, rec: dict) -> None:
        self.metadata_lines += 1
        self.session_id = rec["sessionId"]
        self.project_hash = rec["projectHash"]
        if self.start_time is None:
            self.start_time = str_or_none(rec.get("startTime"))
        self._note_time(rec.get("lastUpdated"))
        self.summary = masked_summary(rec.get("summary")) or self.summary
        if isinstance(rec.get("kind"), str):
            self.kind = rec["kind"]
        messages = rec.get("messages")
        if isinstance(messages, list):  # a whole legacy record on one line
            for msg in messages:
                if isinstance(msg, dict) and isinstance(msg.get("id"), str):
                    self.message(msg)

    def update(self, changes: dict) -> None:
        if isinstance(changes.get("sessionId"), str) and changes["sessionId"]:
            self.session_id = changes["sessionId"]
        self._note_time(changes.get("lastUpdated"))
        if "summary" in changes:
            self.summary = masked_summary(changes.get("summary")) or self.summary
        if isinstance(changes.get("kind"), str):
            self.kind = changes["kind"]
        if isinstance(changes.get("messages"), list):
            self.checkpoint(changes["messages"])

    def message(self, msg: dict) -> int:
        facts = facts_of(msg)
        self._note_time(msg.get("timestamp"))
        mid = msg["id"]
        old = self.messages.get(mid)
        if old is not None:
            self._count(old, -1)
        self.messages[mid] = facts  # an id written again keeps its place (as a JS Map does)
        self._count(facts, 1)
        if facts.kind == REPLY and facts.tokens is not None:
            self.set_usage(mid, facts.tokens, facts.model, ms_of(str_or_none(msg.get("timestamp"))))
        self._derived = None
        return facts.kind

    def set_usage(self, mid: str, tokens: tuple, model: str | None, at: int | None) -> None:
        """Reply ``mid`` used ``tokens`` (its latest copy with usage): what an earlier copy said is
        taken back. A reply without any time is kept, not bucketed (at the file's latest time)."""
        if at is None:
            at = ms_of(self.last_updated)
        new = (tokens, model, at)
        old = self.usage.get(mid)
        if old == new:
            return
        if old is not None and old[2] is not None:
            self.facts.add(old[2], old[1] or "", _tokens5(old[0]), tier=tier_of(old[0][0] + old[0][2]), sign=-1)
        self.usage[mid] = new
        if at is not None:
            self.facts.add(at, model or "", _tokens5(tokens), tier=tier_of(tokens[0] + tokens[2]))
        self.u_version = next(_VERSIONS)

    def checkpoint(self, messages: list) -> None:
        """``$set.messages``: the list is replaced. A reply copy without ``tokens`` keeps the usage
        its id had in this file (0.61's resume writes a checkpoint of the context alone, then one
        rebuilt from the API history whose replies carry no usage: those tokens were still spent)."""
        self.messages = OrderedDict()
        self.prompts = self.replies = 0
        self.tokens = [0, 0, 0]
        for msg in messages:
            if not isinstance(msg, dict) or not isinstance(msg.get("id"), str):
                continue
            facts = facts_of(msg)
            self._note_time(msg.get("timestamp"))
            seen = self.usage.get(msg["id"])
            if facts.kind == REPLY and facts.tokens is None and seen is not None:
                facts.tokens = seen[0]
                facts.model = facts.model or seen[1]
            elif facts.kind == REPLY and facts.tokens is not None and (
                    seen is None or (seen[0], seen[1]) != (facts.tokens, facts.model)):
                # a copy that carries usage is the reply's latest (a legacy file's conversion holds
                # its replies in a checkpoint only); the same usage again keeps its first time
                self.set_usage(msg["id"], facts.tokens, facts.model, ms_of(str_or_none(msg.get("timestamp"))))
            prev = self.messages.get(msg["id"])
            if prev is not None:
                self._count(prev, -1)
            self.messages[msg["id"]] = facts
            self._count(facts, 1)
        self._derived = None

    def rewind(self, mid: str) -> None:
        if mid not in self.messages:
            self.messages.clear()
            self.prompts = self.replies = 0
            self.tokens = [0, 0, 0]
        else:
            while self.messages:
                key, facts = self.messages.popitem()
                self._count(facts, -1)
                if key == mid:
                    break
        self._derived = None

    def _count(self, facts: Facts, sign: int) -> None:
        if facts.kind == PROMPT:
            self.prompts += sign
        elif facts.kind == REPLY:
            self.replies += sign
            if facts.tokens is not None:
                for i in range(3):
                    self.tokens[i] += sign * facts.tokens[i]

    def _note_time(self, value) -> None:
        ts = str_or_none(value)
        if ts is None:
            return
        if self.first_ts is None:
            self.first_ts = ts
        if self.last_updated is None or ts > self.last_updated:
            self.last_updated = ts

    # ---------------------------------------------------------------- derived
    def rebuild_facts(self) -> None:
        """``facts`` from ``usage`` (a restored state)."""
        self.facts = UsageFacts()
        for tokens, model, at in self.usage.values():
            if at is not None:
                self.facts.add(at, model or "", _tokens5(tokens), tier=tier_of(tokens[0] + tokens[2]))
        self.u_version = next(_VERSIONS)

    @property
    def has_content(self) -> bool:
        return self.prompts + self.replies > 0

    def derived(self) -> tuple[str | None, str | None, str | None, bool]:
        """(first prompt, last prompt (both masked, at most PROMPT_MAX), model of the last reply
        that names one, awaiting a reply)."""
        if self._derived is None:
            first = next((f.prompt for f in self.messages.values() if f.kind == PROMPT), None)
            last = model = None
            for f in reversed(self.messages.values()):
                if last is None and f.kind == PROMPT:
                    last = f.prompt
                if model is None and f.kind == REPLY and f.model:
                    model = f.model
                if last is not None and model is not None:
                    break
            awaiting = False
            if self.messages:
                tail = next(reversed(self.messages.values()))
                awaiting = tail.kind in (PROMPT, TOOL_RESULT) or (tail.kind == REPLY and tail.pending)
            self._derived = (prompt_text(first) if first is not None else None,
                             prompt_text(last) if last is not None else None, model, awaiting)
        return self._derived

    @property
    def title(self) -> str | None:
        if self.summary:
            return self.summary
        first = self.derived()[0]
        return collapse(first, TITLE_PROMPT_MAX) if first else None

