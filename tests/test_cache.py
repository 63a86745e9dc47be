"""The saved parse state: used where files still match, harmless when stale, corrupt or foreign."""

from __future__ import annotations

import json
import logging
import os

import pytest

from helm_monitor.sources.claude.catalog import Catalog
from helm_monitor.live.cache import StateCache


def bytes_read(catalog: Catalog) -> int:
    """Transcripts' bytes read, and sidechains' (read for usage)."""
    n = sum(t.reader.bytes_read for t in catalog._transcripts.values())
    n += sum(r.follower.bytes_read for readers in catalog._subagents.values() for r in readers.values())
    return n + sum(r.follower.bytes_read for r in catalog._legacy_readers.values())


@pytest.fixture
def history(claude):
    sessions = []
    for i in range(5):
        s = claude.session(f"/home/u/p{i % 2}")
        for j in range(20):
            s.bookkeeping(2000)
            s.turn(f"prompt {i}.{j}", f"reply {i}.{j}")
        if i % 2:
            s.cost_state({"claude-opus-5-5": 0.01 * i})
        sessions.append(s)
    return sessions


def test_usage_of_an_unchanged_history_is_restored_without_reading(claude, history, tmp_path):
    sub = history[0].subagent()
    history[0].subagent_reply(sub, "found", usage={"input_tokens": 3, "output_tokens": 4})
    cache = StateCache(tmp_path / "cache", str(claude.root))
    first = scanned(claude, cache)
    assert cache.save(first)
    second = scanned(claude, cache)
    assert bytes_read(second) == 0
    for s in history:
        assert second.usage(s.id) == first.usage(s.id)
    assert second.usage(history[0].id).totals()[:2] == [20 * 10 + 3, 20 * 20 + 4]
    assert second.session(history[1].id)["cost"] == {"usd": 0.01, "basis": "ledger", "unpricedModels": []}


def scanned(claude, cache: StateCache) -> Catalog:
    catalog = Catalog(claude.root)
    cache.load_into(catalog)
    catalog.full_scan()
    catalog.drop_restored()
    return catalog


def test_unchanged_history_is_served_without_reading_transcripts(claude, history, tmp_path):
    cache = StateCache(tmp_path / "cache", str(claude.root))
    first = scanned(claude, cache)
    assert bytes_read(first) > 300_000
    assert cache.save(first)
    assert oct(os.stat(tmp_path / "cache").st_mode & 0o777) == "0o700"
    second = scanned(claude, cache)
    assert bytes_read(second) == 0
    assert second.sessions() == first.sessions()


def test_stale_entries_read_only_what_was_appended(claude, history, tmp_path):
    cache = StateCache(tmp_path / "cache", str(claude.root))
    cache.save(scanned(claude, cache))
    before = history[0].path.stat().st_size
    history[0].turn("after the save", "ok")
    appended = history[0].path.stat().st_size - before
    os.unlink(history[1].path)  # gone since the save
    replaced = history[2]
    data = replaced.path.read_bytes()
    tmp = replaced.path.with_suffix(".tmp")
    tmp.write_bytes(data[: len(data) // 2].rsplit(b"\n", 1)[0] + b"\n")
    os.replace(tmp, replaced.path)  # another inode, shorter
    catalog = scanned(claude, cache)
    fresh = Catalog(claude.root)
    fresh.full_scan()
    assert catalog.sessions() == fresh.sessions()
    assert history[1].id not in catalog.sessions()
    assert catalog._transcripts[str(history[0].path)].reader.bytes_read == appended
    assert bytes_read(catalog) == appended + replaced.path.stat().st_size


def test_a_rewritten_tail_is_noticed_even_if_the_file_grew_back(claude, history, tmp_path):
    cache = StateCache(tmp_path / "cache", str(claude.root))
    cache.save(scanned(claude, cache))
    s = history[3]
    lines = s.path.read_bytes().splitlines(keepends=True)
    # Claude Code rewrote the tail in place (same inode), then appended past the old size.
    with open(s.path, "r+b") as f:
        f.truncate(sum(len(x) for x in lines[:-6]))
    s.turn("rewritten tail " + "x" * 5000, "ok")
    catalog = scanned(claude, cache)
    fresh = Catalog(claude.root)
    fresh.full_scan()
    assert catalog.session(s.id) == fresh.session(s.id)
    assert catalog.session(s.id)["lastPrompt"].startswith("rewritten tail")


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", json.dumps({"helm": "0.0.0-other", "state": {}}).encode(),
                                     json.dumps({"helm": "X", "state": {"format": 2}}).encode()])
def test_corrupt_or_foreign_cache_is_ignored(claude, history, tmp_path, content, caplog):
    cache = StateCache(tmp_path / "cache", str(claude.root))
    os.makedirs(cache.dir)
    with open(cache.path, "wb") as f:
        f.write(content)
    catalog = scanned(claude, cache)
    assert len(catalog.sessions()) == 5
    assert cache.save(catalog)
    assert bytes_read(scanned(claude, cache)) == 0


def test_garbage_entries_are_dropped_one_by_one(claude, history, tmp_path):
    cache = StateCache(tmp_path / "cache", str(claude.root))
    cache.save(scanned(claude, cache))
    with open(cache.path) as f:
        doc = json.load(f)
    paths = sorted(doc["state"]["readers"])
    doc["state"]["readers"][paths[0]][2]["tokens"] = "lots"
    doc["state"]["readers"][paths[1]][2]["recent"] = [[1, 2]]
    doc["state"]["readers"][paths[2]] = "nonsense"
    with open(cache.path, "w") as f:
        json.dump(doc, f)
    catalog = scanned(claude, cache)
    fresh = Catalog(claude.root)
    fresh.full_scan()
    assert catalog.sessions() == fresh.sessions()
    assert bytes_read(catalog) == sum(os.stat(p).st_size for p in paths[:3])


def test_cache_inside_the_claude_directory_is_refused(claude, history, caplog):
    cache = StateCache(claude.root / "helm-cache", str(claude.root))
    with caplog.at_level(logging.WARNING):
        assert not cache.enabled
        assert not cache.save(scanned(claude, cache))
    assert not (claude.root / "helm-cache").exists()
    assert "never written" in caplog.text


def test_server_restart_uses_the_cache(claude, history, tmp_path, server_factory):
    env = {"HELM_CACHE_DIR": str(tmp_path / "srv-cache")}
    first = server_factory(claude.root, env=env)
    expected = first.get_json("/api/claude-sessions/all")
    first.stop()
    assert list((tmp_path / "srv-cache").glob("state-*.json"))
    second = server_factory(claude.root, env=env)
    assert second.get_json("/api/claude-sessions/all") == expected
    assert "restored parse state of 5 transcripts" in second.log()
