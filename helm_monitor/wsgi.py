"""WSGI entry for a hand-run gunicorn: ``helm_monitor.wsgi:app``, configured from the environment.

Building the app starts nothing: the watcher starts in the worker after
gevent has patched (the shipped gunicorn config's ``post_worker_init``) or on
the first request.
"""

import logging

from helm_monitor.web.app import create_app

if not logging.getLogger().handlers:
    from helm_monitor.cli import LOG_FORMAT
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

app = create_app()
