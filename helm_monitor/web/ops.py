"""GET /healthz and GET /metrics (Prometheus text format).

prometheus_client is imported by the first ``/metrics``, not at every worker's start
(where the first scan wants both cores)."""

from __future__ import annotations

import collections
import gc
import threading
import time

import orjson
from flask import Blueprint, Flask, Response, current_app, request

from helm_monitor.live.store import STATUSES
from helm_monitor.web.state import service_of

bp = Blueprint("ops", __name__)


# ?greenlets=1 walks every object of the process (tens of ms for a big history,
# holding the event loop): counted at most this often, for leak hunting.
GREENLET_COUNT_EVERY_S = 10.0
_greenlets = {"at": -GREENLET_COUNT_EVERY_S, "count": None}
_greenlets_lock = threading.Lock()


def live_greenlets() -> int | None:
    """Greenlets alive in this process (None without greenlet), at most GREENLET_COUNT_EVERY_S old."""
    try:
        from greenlet import greenlet
    except ImportError:
        return None
    with _greenlets_lock:
        now = time.monotonic()
        if now - _greenlets["at"] >= GREENLET_COUNT_EVERY_S:
            _greenlets["count"] = sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead)
            _greenlets["at"] = now
        return _greenlets["count"]


@bp.get("/healthz")
def healthz():
    """Watcher state, clients, sessions, time since the last file event; ?greenlets=1 adds a greenlet count."""
    health = service_of(current_app).health()
    health["threads"] = threading.active_count()
    if request.args.get("greenlets") == "1":
        health["greenlets"] = live_greenlets()
    return Response(orjson.dumps(health), mimetype="application/json")


@bp.get("/metrics")
def metrics():
    """Prometheus metrics."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    registry = current_app.extensions["helm_metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _LiveCollector:
    """Reads the live service's state at scrape time."""

    def __init__(self, app: Flask, metrics: "Metrics"):
        self.app = app
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        svc = service_of(self.app)
        b = svc.broadcaster
        yield GaugeMetricFamily("helm_stream_clients", "Connected event-stream clients", value=svc.clients)
        sent = CounterMetricFamily("helm_events_sent", "Events sent to stream clients", labels=["type"])
        for kind, n in sorted(self.metrics.events_sent.items()):
            sent.add_metric([kind], n)
        yield sent
        published = CounterMetricFamily("helm_events_published", "Events published to the broadcaster", labels=["type"])
        for kind, n in sorted(b.published.items()):
            published.add_metric([kind], n)
        yield published
        yield CounterMetricFamily("helm_stream_overflows", "Clients that fell behind and were sent a refresh",
                                  value=sum(c.overflows for c in svc.channels))
        yield CounterMetricFamily("helm_stream_slow_disconnects", "Clients disconnected for not keeping up",
                                  value=sum(c.slow_disconnects for c in svc.channels))
        sessions = GaugeMetricFamily("helm_sessions", "Sessions by status", labels=["status"])
        for status, n in svc.store.counts_by_status().items():
            if status in STATUSES:
                sessions.add_metric([status], n)
        yield sessions
        by_source = GaugeMetricFamily("helm_sessions_by_source", "Sessions by agent", labels=["source"])
        for source, n in svc.store.counts_by_source().items():
            by_source.add_metric([source], n)
        yield by_source
        yield from _usage_metrics(svc)
        # The team web tier watches no files: its monitor has none of these, its watcher is None.
        monitor = getattr(svc, "monitor", None)
        lag = getattr(monitor, "last_lag_s", None) or 0.0
        yield GaugeMetricFamily("helm_watcher_lag_seconds",
                                "Seconds from a file event to its published update (last batch)", value=lag)
        last = getattr(monitor, "last_fs_event_at", None)
        yield GaugeMetricFamily("helm_seconds_since_last_fs_event", "Seconds since the last file-system event",
                                value=(time.monotonic() - last) if last else float("nan"))
        watcher = getattr(svc, "watcher", None)
        mode = watcher.mode if watcher is not None else "stopped"
        modes = GaugeMetricFamily("helm_watcher_mode", "File watching mode (1 for the active one)", labels=["mode"])
        for m in ("inotify", "polling", "stopped"):
            modes.add_metric([m], 1.0 if m == mode else 0.0)
        yield modes


def _usage_metrics(svc):
    """Tokens and dollars by model, all time, of every session listed (SPEC 10)."""
    from prometheus_client.core import CounterMetricFamily
    index = getattr(svc, "usage", None)
    if index is None:
        return
    totals = index.totals_by_model()
    tokens = CounterMetricFamily("helm_usage_tokens", "Tokens used, by model and kind (distinct API messages, "
                                 "subagents included)", labels=["model", "kind"])
    messages = CounterMetricFamily("helm_usage_messages", "Distinct API messages, by model", labels=["model"])
    cost = CounterMetricFamily("helm_usage_cost_usd", "Dollars spent, by model and basis (ledger: charged by "
                               "the agent itself; list-price: estimated from genai-prices)",
                               labels=["model", "basis"])
    unpriced = CounterMetricFamily("helm_usage_unpriced_tokens", "Tokens of models without any price, by model",
                                   labels=["model"])
    for model, m in sorted(totals.items()):
        name = model or "unknown"
        for kind in ("input", "output", "cacheRead", "cacheCreation"):
            tokens.add_metric([name, kind], m[kind])
        messages.add_metric([name], m["messages"])
        for basis in ("ledger", "list-price"):
            if m[basis]:
                cost.add_metric([name, basis], m[basis])
        if m["unpricedTokens"]:
            unpriced.add_metric([name], m["unpricedTokens"])
    yield from (tokens, messages, cost, unpriced)


class Metrics:
    def __init__(self, app: Flask):
        self._app = app
        self._registry = None
        self._registry_lock = threading.Lock()
        # Counted for every message to every client (a thousand per event): a plain counter, not a
        # prometheus_client one and its lock. The streams run in the gevent worker's one thread,
        # where nothing switches inside an increment.
        self.events_sent: collections.Counter[str] = collections.Counter()

    @property
    def registry(self):
        """The Prometheus registry, made (and prometheus_client imported) when first asked for."""
        with self._registry_lock:
            if self._registry is None:
                from prometheus_client import CollectorRegistry
                registry = CollectorRegistry(auto_describe=False)
                registry.register(_LiveCollector(self._app, self))
                self._registry = registry
            return self._registry

    def sent(self, event_type: str) -> None:
        self.events_sent[event_type] += 1
