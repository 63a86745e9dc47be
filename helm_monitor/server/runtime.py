"""What the worker process is: gevent-patched or not, and the hooks that start and stop it."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

# How often the stop watcher looks at the worker's alive flag.
STOP_POLL_S = 0.1


def gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")


def offloads_for_runtime():
    """Under gevent: where file reading runs so that streams keep flowing.

    Returns (pump, requests): the pump gets a native thread of its own, so a
    viewer opening a huge conversation never delays live updates; requests
    share the hub's pool. (None, None) when not under gevent.
    """
    if not gevent_patched():
        return None, None
    import gevent
    from gevent.threadpool import ThreadPool

    pump_pool = ThreadPool(1)

    def pump(fn):
        return pump_pool.apply(fn)

    def requests(fn):
        return gevent.get_hub().threadpool.apply(fn)

    return pump, requests


def start_early_scan(server) -> None:
    """gunicorn ``on_starting`` (the arbiter, before it listens): fork the first scan's processes now,
    so that a big history is read while the worker starts (helm_monitor.live.scan)."""
    from helm_monitor.config import Config
    try:
        cfg = getattr(server.app, "helm_config", None) or Config.from_env().validate()
    except Exception:
        log.exception("the first scan could not start early; the worker scans alone")
        return
    start_early_scan_for(cfg)


def start_early_scan_for(cfg) -> None:
    """The same, as soon as the configuration is known (``helm-monitor`` does it before it even
    imports gunicorn). Once per process; not on a restart with saved parse state: that reads little."""
    try:
        from helm_monitor.live import scan
        from helm_monitor.live.cache import StateCaches
        from helm_monitor.live.sources import build_catalog
        if scan.early_started() or cfg.role == "web":  # the web tier reads no files
            return
        workers = cfg.scan_workers or scan.default_workers()
        if workers < 2:
            return
        catalog = build_catalog(cfg.source_options(), cfg.host_name)
        if cfg.cache_dir and StateCaches(cfg.cache_dir, catalog).any_saved():
            return
        scan.start_early(catalog, workers)
    except Exception:
        log.exception("the first scan could not start early; the worker scans alone")


def early_scan_pre_fork() -> None:
    """gunicorn ``pre_fork`` (the arbiter): only the first worker takes over the early scan."""
    from helm_monitor.live import scan
    scan.early_pre_fork()


_entry_points = None  # importlib.metadata.entry_points while entry points are read once (below)


def read_entry_points_once() -> None:
    """gunicorn ``post_fork`` (the worker, before it patches): entry points read once until it has patched.

    gevent's ``patch_all()`` looks up its plugins' entry points for each of the 14 modules it
    patches, and each lookup reads the metadata of every installed distribution: 70-90 ms of
    CPU per worker start, while the first scan's processes want both cores. The installed
    distributions do not change meanwhile, so one reading answers them all (the same
    ``EntryPoints``, selected as ``entry_points(**params)`` selects them)."""
    global _entry_points
    from importlib import metadata
    if _entry_points is not None:
        return
    real = _entry_points = metadata.entry_points
    read = []

    def entry_points(**params):
        if not read:
            read.append(real())
        return read[0].select(**params) if params else read[0]
    metadata.entry_points = entry_points


def read_entry_points_again() -> None:
    """Undo :func:`read_entry_points_once` (an installation may change while the worker runs)."""
    global _entry_points
    if _entry_points is not None:
        from importlib import metadata
        metadata.entry_points, _entry_points = _entry_points, None


def start_in_worker(worker) -> None:
    """gunicorn ``post_worker_init``: the worker has patched; start watching, and arm the stop watcher."""
    read_entry_points_again()
    app = worker.wsgi
    svc = app.extensions["helm"]
    svc.start(*offloads_for_runtime())

    def close_streams_when_stopping():
        # TERM (stop, or the old worker on HUP reload) clears worker.alive;
        # gunicorn then waits for open requests up to the graceful timeout.
        # Endless streams would hold it that long: close them now.
        import time
        while worker.alive:
            time.sleep(STOP_POLL_S)
        closed = svc.close_streams()
        if closed:
            log.info("closed %d open stream(s) for shutdown", closed)
        # Idle keep-alive connections would hold the stop until their wait runs out.
        close_idle = getattr(worker, "close_idle", None)
        if close_idle is not None:
            close_idle()

    threading.Thread(target=close_streams_when_stopping, name="helm-stop-watcher", daemon=True).start()


def stop_in_worker(worker) -> None:
    """gunicorn ``worker_exit`` (in the worker, after its loop ended): stop watching, save the parse state."""
    try:
        svc = worker.wsgi.extensions["helm"]
    except Exception:
        return
    svc.stop()


def close_streams_now(worker) -> None:
    """gunicorn ``worker_int`` / ``worker_abort``."""
    try:
        worker.wsgi.extensions["helm"].close_streams()
    except Exception:
        pass
