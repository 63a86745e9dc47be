"""helm-monitor: watch coding agents' sessions live.

Layers, in the direction data flows:

- ``helm_monitor.sources``: the domain. One reader per agent (``claude``, ``codex``,
  ``opencode``, ``gemini``) behind one interface (``sources.base.Source``) turns the
  files that agent writes into Session objects. Knows nothing of Flask, gevent or the
  network.
- ``helm_monitor.live``: the sources as one catalog of keys, watcher, coalescer, store
  and broadcasters. Plain threading; under gunicorn's gevent worker the threads are
  greenlets.
- ``helm_monitor.web``: the Flask app (REST, event stream, page, security).
- ``helm_monitor.server``: gunicorn configuration, the worker's start and stop hooks.
"""

__version__ = "0.1.0"
