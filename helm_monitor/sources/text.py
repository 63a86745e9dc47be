"""Small text and value helpers every reader uses on records it does not trust.

Agents' records are no documented interface: these take any value and answer
with the plain type wanted, or its "absent" value, never raising.
"""

from __future__ import annotations

import datetime as _dt
import re

from helm_monitor.sources.redact import redact_head

_WS = re.compile(r"\s+")
ELLIPSIS = "\u2026"
# Counts at or above this are nonsense (a corrupt record): taken as absent, so that totals stay
# within the 64-bit integers JSON state (orjson) can hold.
INT_MAX = 1e18


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def collapse(text: str, limit: int) -> str:
    """On one line (runs of white space made one space), then clipped."""
    return clip(_WS.sub(" ", text).strip(), limit)


def masked_clip(text: str, limit: int) -> str:
    """Masked, then clipped: the masking sees a little past the cut, so a secret straddling it is masked whole."""
    head, cut = redact_head(text, limit)
    return clip(head + ELLIPSIS if cut else head, limit)


def str_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value) -> int:
    """A count: a non-negative number (floats cut), anything else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if 0 <= value < INT_MAX else 0
    if isinstance(value, float) and 0 <= value < INT_MAX:  # NaN fails both comparisons
        return int(value)
    return 0


def iso_from_epoch(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC) of a Unix time in seconds."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_from_ms(ms: int) -> str:
    return iso_from_epoch(ms / 1000)
