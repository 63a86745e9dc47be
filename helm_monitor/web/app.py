"""The Flask app factory."""

from __future__ import annotations

import logging

from pathlib import Path

from flask import Flask

from helm_monitor.config import Config
from helm_monitor.live.service import LiveService

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent


def _asset_dir(name: str) -> str:
    """templates/ and static/: inside the installed package, or at the top of a source checkout."""
    installed = _PACKAGE / name
    if installed.is_dir():
        return str(installed)
    return str(_PACKAGE.parent / name)


def create_app(config: Config | None = None) -> Flask:
    config = (config or Config.from_env()).validate()
    app = Flask("helm_monitor", template_folder=_asset_dir("templates"), static_folder=_asset_dir("static"))
    app.config["HELM"] = config
    app.config["JSON_SORT_KEYS"] = False
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 3600
    app.extensions["helm"] = _service(config)

    from helm_monitor.web import api, errors, ops, page, search, security, stream, usage, ws
    errors.init_app(app)
    security.init_app(app)
    app.extensions["helm_metrics"] = ops.Metrics(app)
    app.register_blueprint(page.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.claude_bp)
    app.register_blueprint(api.hosts_bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(ws.bp)
    app.register_blueprint(ops.bp)

    @app.before_request
    def _start_lazily():
        # gunicorn's post_worker_init starts the service; any other server
        # (flask run, a test client) starts it on the first request.
        svc = app.extensions["helm"]
        if not svc.started:
            from helm_monitor.server.runtime import offloads_for_runtime
            svc.start(*offloads_for_runtime())

    return app


def _service(config: Config):
    """What serves the data: this host's files (local, agent) or the team's engine (web)."""
    if config.role == "web":
        from helm_monitor.team.web import TeamWebService
        return TeamWebService(config)
    svc = LiveService(
        sources=config.source_options(), host=config.host_name, debounce_s=config.debounce_ms / 1000.0,
        max_clients=config.max_clients,
        client_queue=config.client_queue, watcher_mode=config.watcher, cache_dir=config.cache_dir,
        scan_workers=config.scan_workers)
    if config.role == "agent":
        from helm_monitor.team.agent import attach
        attach(svc, config)
    if config.search and config.cache_dir is not None:
        from helm_monitor.search.process import SearchIndexer
        indexer = SearchIndexer(cache_dir=config.cache_dir, host=svc.host, sources=svc.source_options,
                                ready=svc.ready, watcher=config.watcher, log_level=config.log_level)
        svc.search_index = indexer.path
        svc.attached.append(indexer)
    return svc


def static_dir() -> str:
    return _asset_dir("static")


