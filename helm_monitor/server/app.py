"""Run gunicorn in-process with the shipped configuration (the ``helm-monitor`` command)."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from helm_monitor.config import Config
from helm_monitor.server import gunicorn_conf


class HelmApplication(BaseApplication):
    def __init__(self, config: Config):
        self.helm_config = config
        super().__init__()

    def load_config(self) -> None:
        for key in dir(gunicorn_conf):
            if key in self.cfg.settings and not key.startswith("_"):
                self.cfg.set(key, getattr(gunicorn_conf, key))
        cfg = self.helm_config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.cfg.set("bind", [f"{host}:{cfg.port}"])
        self.cfg.set("worker_connections", cfg.max_clients + 200)
        self.cfg.set("loglevel", cfg.log_level)
        self.cfg.set("workers", cfg.workers)

    def load(self):
        from helm_monitor.web.app import create_app
        return create_app(self.helm_config)


def serve(config: Config) -> int:
    HelmApplication(config).run()
    return 0
