"""gunicorn configuration shipped with helm-monitor.

Use: ``gunicorn -c python:helm_monitor.server.gunicorn_conf helm_monitor.wsgi:app``
(``helm-monitor`` applies the same settings itself).

One gevent worker: every stream is a greenlet, the watchdog observer and the
pump are greenlets too, and all state lives in one process. The observer is
started in ``post_worker_init``, after the worker monkey-patched; never at
import (``preload_app`` stays off) and never in ``post_fork``. The first scan of
a big history is forked off in ``on_starting`` (the arbiter, before it listens)
and taken over by the first worker (helm_monitor.live.scan).
"""

import os

from helm_monitor.server.runtime import (close_streams_now, early_scan_pre_fork, read_entry_points_once,
                                         start_early_scan, start_in_worker, stop_in_worker)

_host = os.environ.get("HOST", "127.0.0.1")
_port = os.environ.get("PORT", "5003")
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
# gunicorn's gevent worker, whose keep-alive waits end when it stops (server/worker.py).
worker_class = "helm_monitor.server.worker.HelmGeventWorker"
workers = 1
# Streams plus ordinary requests: room above the client cap.
worker_connections = int(os.environ.get("HELM_MAX_CLIENTS", "1000")) + 200
preload_app = False
# Open streams are closed on TERM/HUP within ~0.1 s, so a short graceful
# timeout only bounds ordinary requests.
graceful_timeout = 5
# The worker heartbeat (not a request timeout: streams are long-lived by design).
timeout = 30
# How long a connection may wait for its next request (its first one too). Longer
# than a browser keeps a socket it has not used yet (Chromium: 10 s), so that the
# server never closes one the browser is about to send down; a stopping worker ends
# these waits at once (server/worker.py), as it closes streams.
keepalive = 15
# gunicorn 27 opens a control socket under ~/.gunicorn/ by default; under
# systemd hardening the home is hidden or read-only. Not needed here.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("HELM_LOG_LEVEL", "info")
proc_name = "helm-monitor"
# Forwarded headers are trusted from the local reverse proxy only, unless told which proxies
# to trust (a team web machine that nginx reaches over the network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def on_starting(server):
    start_early_scan(server)


def pre_fork(server, worker):
    early_scan_pre_fork()


def post_fork(server, worker):
    read_entry_points_once()


def post_worker_init(worker):
    start_in_worker(worker)


def worker_exit(server, worker):
    stop_in_worker(worker)


def worker_int(worker):
    close_streams_now(worker)


def worker_abort(worker):
    close_streams_now(worker)
