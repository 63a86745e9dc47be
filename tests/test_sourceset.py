"""Several sources as one catalog of keys: routing, keys, and one reader's bug harming no neighbour."""

from __future__ import annotations

import pytest

import logging
import os

from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.monitor import Monitor
from helm_monitor.live.sources import SourceSet
from helm_monitor.live.store import SessionStore
from helm_monitor.sources.base import Source, Watch
from helm_monitor.sources.claude import Catalog
from tests.support.server import wait_until


class Exploding(Source):
    """A reader with a bug: it claims its directory, then raises from everything it is asked."""

    name = "codex"

    def watches(self):
        return [Watch(self.root, True)]

    def iter_paths(self):
        yield os.path.join(self.root, "x.jsonl")

    def apply(self, path, is_dir=None):
        if path.endswith("y.jsonl"):
            raise RuntimeError("reader bug")
        return {"t1"}  # ... whose session then fails to build

    def check_liveness(self):
        raise RuntimeError("liveness bug")

    def session_ids(self):
        return {"t1"}

    def session(self, session_id):
        raise RuntimeError("build bug")

    def conversation(self, session_id):
        return None


def test_keys_route_each_path_to_its_source(claude, tmp_path):
    s = claude.session("/home/u/p")
    s.turn("hello", "hi")
    other = tmp_path / "other"
    other.mkdir()
    sources = SourceSet([Catalog(claude.root), Exploding(str(other))], "box")
    assert sources.session_for_path(str(s.path)) == f"box:claude-code:{s.id}"
    assert sources.apply(str(tmp_path / "elsewhere.jsonl")) == set()  # nobody's path
    assert sources.apply(str(s.path)) == {f"box:claude-code:{s.id}"}
    session = sources.session(f"box:claude-code:{s.id}")
    assert session["key"] == f"box:claude-code:{s.id}" and session["host"] == "box" and session["stale"] is False
    # Its one reply (claude-opus-5-5, no cost-state ledger) at list price.
    assert session["cost"] == {"usd": pytest.approx(10 * 4e-6 + 20 * 20e-6 + 30 * 5e-6 + 40 * 0.2e-6),
                               "basis": "list-price", "unpricedModels": []}
    for bad in (f"other:claude-code:{s.id}", f"box:gemini:{s.id}", "box:claude-code:", s.id, "::"):
        assert sources.session(bad) is None and sources.conversation(bad) is None
    assert sources.conversation(f"box:claude-code:{s.id}").page(0, 10)["total"] == 2
    assert [w.path for w in sources.watches()][-1] == str(other)


def test_a_broken_reader_harms_no_session_of_another(claude, tmp_path, caplog):
    s = claude.session("/home/u/p")
    s.turn("before", "ok")
    other = tmp_path / "other"
    other.mkdir()
    sources = SourceSet([Exploding(str(other)), Catalog(claude.root)], "box")
    store = SessionStore(Broadcaster())
    monitor = Monitor(sources, store, debounce_s=0.05, liveness_interval_s=0.05)
    key = f"box:claude-code:{s.id}"
    with caplog.at_level(logging.ERROR):
        monitor.start()
        try:
            assert monitor.ready.wait(10)
            assert store.get(key)["lastPrompt"] == "before"
            s.turn("after", "ok")
            # The broken reader's paths in the same batch: one fails to apply, one to build.
            monitor.notify(str(other / "x.jsonl"))
            monitor.notify(str(other / "y.jsonl"))
            monitor.notify(str(s.path))
            wait_until(lambda: store.get(key)["lastPrompt"] == "after", 5, message="the Claude update")
            wait_until(lambda: "liveness bug" in caplog.text, 5, message="the liveness failure logged")
            # (y.jsonl does not exist: a removal, read GONE_SETTLE_S after it was noticed)
            wait_until(lambda: "reader bug" in caplog.text, 5, message="the reader's failure logged")
            assert monitor.alive
        finally:
            monitor.stop()
    assert "reader bug" in caplog.text and "build bug" in caplog.text
    assert [k for k in store.snapshot()] and all(x["source"] == "claude-code" for x in store.snapshot())


def test_agents_without_sessions_scan_no_processes(tmp_path, monkeypatch):
    """OpenCode and Gemini CLI tell alive from ended by scanning /proc: not while they have no
    session (not installed), and at once when the first one appears."""
    import helm_monitor.sources.gemini.liveness as gemini_liveness
    import helm_monitor.sources.opencode.source as opencode_source
    from helm_monitor.sources.gemini import GeminiSource
    from helm_monitor.sources.opencode import OpenCodeSource
    from tests.support.gemini import GeminiHome

    scans = []
    for module in (gemini_liveness, opencode_source):
        real = module.agent_processes
        monkeypatch.setattr(module, "agent_processes",
                            lambda matches, root="/proc", real=real, m=module: scans.append(m) or real(matches, root))
    gemini = GeminiSource(str(tmp_path / "gemini"))
    opencode = OpenCodeSource(str(tmp_path / "opencode"))
    sources = SourceSet([gemini, opencode], "box")
    sources.full_scan()
    for _ in range(3):
        assert sources.check_liveness() == set()
    assert scans == []
    chat = GeminiHome(tmp_path / "gemini").project("/home/u/alpha").session("5f0c1e52-8f0a-4d5e-9a53-6d3f3c1a2b7e")
    chat.prompt("hello")
    changed = sources.apply(str(chat.path))
    assert sources.session(next(iter(changed)))["status"] in ("busy", "ended")
    assert scans == [gemini_liveness]
