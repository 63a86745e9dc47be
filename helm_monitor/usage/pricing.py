"""List prices from the ``genai-prices`` package (offline), and a session's cost with its basis.

Cost comes first from the agent's own ledger (its facts' ``ledger``), else from list prices
of the tokens, else it is unpriced: never 0 for a model the table does not know, and never
a neighbour's price (an unknown id is not matched to the nearest known one).

genai-prices' ``calc_price`` takes about 0.2 ms a call, too slow for every message of a big
history. Prices are linear within a tier, so a row (the sum of many requests of one model,
one long-context class, one speed) costs its tokens times unit prices; the unit prices of each
(model, price period, tier, speed) come from a handful of ``calc_price`` calls, made once.
The table is loaded on first use, without pydantic or what fetches prices (30-50 ms of CPU,
:mod:`.price_table`), and never fetches anything: prices change when a newer release is installed. The unit prices worked out are saved in the
cache directory for that release (:func:`export_units`), so a restart does not import it.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from datetime import datetime, timezone

from helm_monitor.usage import price_table
from helm_monitor.usage.facts import BUCKET_MS, TIER_STARTS, UsageFacts

log = logging.getLogger(__name__)

# The provider whose prices a source's models carry, unless the model names its own
# (``provider/model``, as OpenCode's rows do).
SOURCE_PROVIDERS = {"claude-code": "anthropic", "codex": "openai", "gemini": "google", "opencode": None}
# Provider ids as agents write them -> genai-prices' ids.
PROVIDER_ALIASES = {"anthropic": "anthropic", "openai": "openai", "google": "google", "gemini": "google",
                    "google-vertex": "google", "vertex": "google", "amazon-bedrock": "aws", "bedrock": "aws",
                    "azure": "azure", "openrouter": "openrouter", "x-ai": "x-ai", "xai": "x-ai",
                    "deepseek": "deepseek", "mistral": "mistral", "groq": "groq"}
# Region and version decorations of cloud-hosted ids: us.anthropic.claude-x-v1:0 -> claude-x.
_CLOUD_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")
_CLOUD_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_PROBE_OUTPUT = 1_000_000

_lock = threading.Lock()
_snapshot = None
_units: dict = {}  # (model, source, UTC day, tier, speed) -> unit prices (USD per token) or None
_UNITS_MAX = 200_000
_by_prices: dict = {}  # (model, provider, tier, the prices in force) -> unit prices
_models: dict = {}  # (model id, provider) -> (provider, ModelInfo) or (None, None)
_unpriced: dict[str, str] = {}  # model -> why (every model without a price, for /healthz)
_computed = 0  # unit prices worked out from the table in this process (saved ones are not)
# Saved unit prices (export_units / import_units): what a restart prices without the table.
UNITS_FORMAT = 1


def _get_snapshot():
    global _snapshot
    if _snapshot is None:
        _snapshot = _price_modules()[0].get_snapshot()
    return _snapshot


_modules = None  # (data_snapshot, types), once loaded


def _price_modules():
    """genai-prices' ``data_snapshot`` and ``types`` (the bundled table and the price arithmetic),
    loaded once, without the package's ``__init__`` or pydantic (:mod:`.price_table`)."""
    global _modules
    if _modules is None:
        _modules = price_table.load()
    return _modules


def warm() -> None:
    """Load the price table now (30-50 ms holding the interpreter), before sessions are read:
    not at the first session's cost, while streams wait on it."""
    try:
        _get_snapshot()
        units("claude-opus-5-5", "claude-code", 0)
    except Exception:  # pricing that cannot load says so when it is used
        log.exception("loading genai-prices failed")


def split_model(model: str, source: str) -> tuple[str, str | None]:
    """``(model id, genai-prices provider id or None)`` for a row's model of ``source``."""
    provider = SOURCE_PROVIDERS.get(source)
    name = model
    if "/" in model:
        head, _, rest = model.partition("/")
        provider = PROVIDER_ALIASES.get(head.lower(), head.lower())
        name = rest
    name = _CLOUD_SUFFIX.sub("", _CLOUD_PREFIX.sub("", name)) if "anthropic." in name else name
    return name, provider


def _model_info(name: str, provider: str | None):
    """genai-prices' ModelInfo for an exact id of ``provider`` (None: unknown)."""
    snap = _get_snapshot()
    try:
        found_provider, info = snap.find_provider_model(name, None, provider, None)
    except LookupError:
        return None, None
    if provider is not None and found_provider.id != provider:
        return None, None  # found under another provider: a neighbour, not this model's price
    return found_provider, info


def _probe(mp, **usage) -> float:
    return float(mp.calc_price(_price_modules()[1].Usage(**usage))["total_price"])


def _compute_units(mp, tier: int):
    p = tier + 1  # a prompt of this many tokens is in the row's tier, as every request of the row is
    base = _probe(mp, input_tokens=p)
    return (base / p,
            (_probe(mp, input_tokens=p, output_tokens=_PROBE_OUTPUT) - base) / _PROBE_OUTPUT,
            _probe(mp, input_tokens=p, cache_read_tokens=p) / p,
            _probe(mp, input_tokens=p, cache_write_tokens=p) / p,
            _probe(mp, input_tokens=p, cache_write_tokens=p, cache_write_1h_tokens=p) / p)


def _price_key(mp) -> str:
    # The prices themselves (Decimals, tiers): a period whose prices did not change shares them.
    return repr(sorted(vars(mp).items()))


def units(model: str, source: str, bucket_ms: int, tier: int = 0, speed: str = ""):
    """Unit prices (USD per token: input, output, cache read, 5-minute and 1-hour cache write)
    of ``model`` of ``source`` at ``bucket_ms``, or None when it has no list price."""
    period = bucket_ms - bucket_ms % 86_400_000  # price periods start on UTC days
    key = (model, source, period, tier, speed)
    got = _units.get(key, False)
    if got is not False:
        return got
    with _lock:
        got = _units.get(key, False)
        if got is not False:
            return got
        name, provider = split_model(model, source)
        known = _models.get((name, provider))
        if known is None:
            known = _models[(name, provider)] = _model_info(name, provider) if name else (None, None)
        info = known[1]
        if info is None:
            got = None
            if model not in _unpriced:
                _unpriced[model] = f"no list price for {name!r} of {provider or 'any provider'}"
                log.warning("usage: model %r (%s) has no list price in genai-prices; its tokens are shown "
                            "unpriced (a newer genai-prices release may know it)", model, source)
        else:
            try:
                when = datetime.fromtimestamp(period / 1000, timezone.utc)
                mp = info.get_prices(when, {"speed": "fast"} if speed == "fast" else None)
                price_key = (name, provider, tier, _price_key(mp))
                got = _by_prices.get(price_key)
                if got is None:
                    got = _by_prices[price_key] = _compute_units(mp, tier)
            except Exception as exc:  # a table entry this code cannot read: unpriced, said once
                got = None
                _unpriced.setdefault(model, f"price of {name!r} could not be computed: {exc}")
                log.warning("usage: pricing %r failed (%s); its tokens are shown unpriced", model, exc)
        if len(_units) > _UNITS_MAX:
            _units.clear()
        _units[key] = got
        global _computed
        _computed += 1
        return got


def computed() -> int:
    """How many unit prices this process worked out from the table (moves when there is more to save)."""
    return _computed


def export_units() -> dict:
    """Every unit price worked out so far, for :func:`import_units` at the next start: a restart over
    a known history then prices it without importing the table (0.1-0.3 s of the interpreter)."""
    with _lock:
        rows = [[*key, None if got is None else list(got)] for key, got in _units.items()]
        unpriced = dict(_unpriced)
    return {"format": UNITS_FORMAT, "table": table_identity(), "units": rows, "unpriced": unpriced}


def import_units(data) -> int:
    """Unit prices from :func:`export_units` of the same price table (another table's, or anything
    odd, is ignored: prices are then worked out again). Returns how many were taken in."""
    table = table_identity()
    if table is None or type(data) is not dict or data.get("format") != UNITS_FORMAT or data.get("table") != table:
        return 0
    rows, unpriced = data.get("units"), data.get("unpriced")
    if type(rows) is not list or type(unpriced) is not dict:
        return 0
    taken = {}
    for row in rows:
        if type(row) is not list or len(row) != 6:
            return 0
        model, source, period, tier, speed, got = row
        if (type(model) is not str or type(source) is not str or type(period) is not int or period % 86_400_000
                or type(tier) is not int or type(speed) is not str):
            return 0
        if got is not None:
            if type(got) is not list or len(got) != 5 or any(type(x) not in (int, float) or x < 0 for x in got):
                return 0
            got = tuple(float(x) for x in got)
        taken[(model, source, period, tier, speed)] = got
    if not all(type(k) is str and type(v) is str for k, v in unpriced.items()):
        return 0
    with _lock:
        for key, got in taken.items():
            _units.setdefault(key, got)
        for model, why in unpriced.items():
            _unpriced.setdefault(model, why)
    return len(taken)


def row_cost(key: tuple, row, source: str) -> float | None:
    """List price of one facts row, or None when its model is unpriced."""
    bucket, model, tier, speed = key
    u = units(model, source, bucket, tier, speed)
    if u is None:
        return None
    return row[0] * u[0] + row[1] * u[1] + row[2] * u[2] + row[3] * u[3] + row[4] * u[4]


def session_cost(facts: UsageFacts | None, source: str) -> dict:
    """A Session's ``cost`` (SPEC 5): ``{"usd", "basis", "unpricedModels"}``.

    ``ledger`` when the agent charged it itself, ``list-price`` when every model with tokens
    has a list price, else the priced part with ``unpricedModels`` naming the rest; ``unpriced``
    (``usd`` null) when nothing could be priced; ``mixed`` when an agent that charges per message
    (OpenCode) charged some models and list prices priced the others."""
    if facts is None:
        return {"usd": None, "basis": "unpriced", "unpricedModels": []}
    charged = facts.charged_models()
    if charged is None:  # the ledger covers every model
        return {"usd": round(sum(facts.ledger.values()), 9), "basis": "ledger", "unpricedModels": []}
    total = 0.0
    priced = False
    missing: set[str] = set()
    for key, row in facts.rows.items():
        if key[1] in charged or not any(row[:5]):
            continue
        usd = row_cost(key, row, source)
        if usd is None:
            missing.add(key[1])
        else:
            total += usd
            priced = True
    if facts.ledger:  # what the agent charged, and list prices where it charged nothing (OpenCode)
        usd = round(sum(facts.ledger.values()) + total, 9)
        return {"usd": usd, "basis": "mixed" if priced else "ledger", "unpricedModels": sorted(missing)}
    if not priced:
        return {"usd": None, "basis": "unpriced", "unpricedModels": sorted(missing)}
    return {"usd": round(total, 9), "basis": "list-price", "unpricedModels": sorted(missing)}


@functools.cache
def table_version() -> str:
    """Which price table list prices come from."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return "genai-prices " + version("genai-prices")
    except PackageNotFoundError:
        return "genai-prices (version unknown)"


@functools.cache
def table_identity() -> str | None:
    """The installed price table's file, size and time, without importing it (importing it, or
    reading its version with importlib.metadata, costs what saved unit prices save)."""
    import importlib.util
    import os
    try:
        spec = importlib.util.find_spec("genai_prices")
        path = os.path.join(os.path.dirname(spec.origin), "data.py")
        st = os.stat(path)
    except (ImportError, AttributeError, TypeError, OSError):
        return None
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def unpriced_models() -> dict[str, str]:
    """Every model met so far without a list price, and why (for /healthz)."""
    return dict(_unpriced)


def check_table() -> list[int]:
    """Tier starts of the installed price table that :data:`TIER_STARTS` lacks (should be none)."""
    types = _price_modules()[1]
    missing = set()
    for provider in _get_snapshot().providers:
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, list) else [model.prices]
            for entry in prices:
                mp = getattr(entry, "prices", entry)
                for value in vars(mp).values():
                    if isinstance(value, types.TieredPrices):
                        missing.update(t.start for t in value.tiers if t.start not in TIER_STARTS)
    return sorted(missing)


assert BUCKET_MS * 96 == 86_400_000
