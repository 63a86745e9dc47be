"""helm-monitor: watch Claude Code sessions live.

Layers, in the direction data flows:

- ``helm_monitor.sources.claude``: the domain. Reads the files Claude Code writes into
  Session objects. Knows nothing of Flask, gevent or the network.
- ``helm_monitor.live``: watcher, coalescer, store and broadcaster. Plain
  threading; under gunicorn's gevent worker the threads are greenlets.
- ``helm_monitor.web``: the Flask app (REST, event stream, page, security).
- ``helm_monitor.server``: gunicorn configuration, the worker's start and stop hooks.
"""

__version__ = "0.1.0"
