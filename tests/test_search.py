"""Full-text search (SPEC 11): the index over the real samples of every agent, kept up to date
as files grow and change, masked, and rebuilt when unusable; the query language's bad input;
and /api/search of a real server with its real indexer process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from helm_monitor.live.sources import build_catalog
from helm_monitor.search import db, query
from helm_monitor.search.writer import IndexWriter
from tests.support.server import wait_until

FIXTURES = Path(__file__).parent / "fixtures"
HOST = "h1"


def _copy(tmp_path) -> dict[str, dict]:
    out = {}
    shutil.copytree(FIXTURES / "claude-code-2.1.330", tmp_path / "claude")
    out["claude-code"] = {"root": str(tmp_path / "claude")}
    shutil.copytree(FIXTURES / "codex-0.171.0/home/.codex", tmp_path / "codex")
    out["codex"] = {"root": str(tmp_path / "codex")}
    shutil.copytree(FIXTURES / "gemini-0.61.0/home/.gemini", tmp_path / "gemini")
    out["gemini"] = {"root": str(tmp_path / "gemini")}
    shutil.copytree(FIXTURES / "opencode-1.18.33/home/.local/share/opencode", tmp_path / "opencode")
    out["opencode"] = {"root": str(tmp_path / "opencode"), "db_path": str(tmp_path / "opencode/opencode.db")}
    return out


def _index_all(catalog, writer) -> int:
    written = 0
    for key, session in catalog.sessions().items():
        conv = catalog.conversation(key)
        if conv is not None:
            written += writer.index(key, session, conv)
    return written


def _words(message: dict) -> list[str]:
    text = " ".join(b.get("text") or "" for b in message["blocks"] if b.get("type") == "text")
    return sorted(set(re.findall(r"[^\W\d_]{6,}", text)), key=len, reverse=True)


@pytest.fixture
def indexed(tmp_path):
    catalog = build_catalog(_copy(tmp_path), HOST)
    catalog.full_scan()
    path = db.path_in(tmp_path / "cache")
    writer = IndexWriter(path)
    _index_all(catalog, writer)
    yield catalog, writer, path
    writer.close()


def test_every_agents_prompts_and_replies_are_found_in_their_session(indexed):
    catalog, _writer, path = indexed
    checked = {}
    for key, session in catalog.sessions().items():
        with catalog.conversation(key).lock:
            messages = catalog.conversation(key).page(0, 500)["messages"]
        for m in messages:
            words = _words(m)
            if not words:
                continue
            answer = query.search(path, words[0], limit=100)
            found = {(h["key"], h["messageIndex"]) for h in answer["hits"]}
            assert (key, m["index"]) in found, (words[0], key, m["index"], answer)
            hit = next(h for h in answer["hits"] if (h["key"], h["messageIndex"]) == (key, m["index"]))
            assert hit["role"] == m["role"]
            start, end = hit["highlights"][0]
            assert hit["snippet"][start:end].lower() == words[0].lower()
            checked.setdefault(session["source"], set()).add(m["role"])
    assert set(checked) == {"claude-code", "codex", "gemini", "opencode"}, checked
    assert all(roles == {"user", "assistant"} for roles in checked.values()), checked


def test_filters_narrow_by_agent_project_host_and_date(indexed):
    catalog, _writer, path = indexed
    everything = query.search(path, "the", limit=100)
    sources = {catalog.session(h["key"])["source"] for h in everything["hits"]}
    assert len(sources) >= 2
    for source in sources:
        only = query.search(path, "the", limit=100, source=source)
        assert only["hits"] and {catalog.session(h["key"])["source"] for h in only["hits"]} == {source}
    session = catalog.session(everything["hits"][0]["key"])
    project = session["projectPath"] or session["projectDir"]
    mine = query.search(path, "the", limit=100, project=project)
    assert mine["hits"] and all((catalog.session(h["key"])["projectPath"] or catalog.session(h["key"])["projectDir"])
                                == project for h in mine["hits"])
    assert query.search(path, "the", host="elsewhere")["hits"] == []
    assert query.search(path, "the", host=HOST)["total"] == everything["total"]
    # Unfiltered hits are ranked in the FTS table alone (a faster plan): the same order, page by page.
    for offset in (0, 3, 7):
        fast = query.search(path, "the", limit=5, offset=offset)["hits"]
        joined = query.search(path, "the", limit=5, offset=offset, host=HOST)["hits"]
        assert fast == joined and len(fast) == 5
    assert query.search(path, "the", start="2099-01-01")["hits"] == []
    assert query.search(path, "the", end="2000-01-01")["hits"] == []
    assert query.search(path, "the", start="2000-01-01", end="2099-01-01")["total"] == everything["total"]
    recent = query.search(path, "the", limit=100, sort="recent")["hits"]
    stamps = [h["timestamp"] for h in recent if h["timestamp"]]
    assert stamps == sorted(stamps, reverse=True)


def _claude_file(catalog) -> tuple[str, Path]:
    root = Path(catalog.source("claude-code").root)
    files = sorted((root / "projects").glob("*/*.jsonl"), key=lambda p: p.stat().st_size)
    path = files[-1]
    return f"{HOST}:claude-code:{path.stem}", path


def _user_record(path: Path, text: str, uuid: str) -> str:
    first = next(json.loads(line) for line in path.read_text().splitlines() if '"type":"user"' in line)
    first["message"] = {"role": "user", "content": text}
    first["uuid"] = uuid
    return json.dumps(first) + "\n"


def test_an_append_indexes_only_what_was_appended(indexed):
    catalog, writer, path = indexed
    key, file = _claude_file(catalog)
    before = writer.indexed(key)
    with file.open("a") as f:
        f.write(_user_record(file, "where did we fix that zebracorn migration", "u-append-1"))
    catalog.apply(str(file))
    assert writer.index(key, catalog.session(key), catalog.conversation(key)) == 1
    assert writer.indexed(key) == before + 1
    hits = query.search(path, "zebracorn migr")["hits"]
    assert [(h["key"], h["messageIndex"]) for h in hits] == [(key, before)]
    # Nothing new: nothing written, the last message read again and found unchanged.
    assert writer.index(key, catalog.session(key), catalog.conversation(key)) == 0


class _Messages:
    """A conversation whose messages a test sets (an agent that rewrites its latest message)."""

    def __init__(self, texts):
        import threading
        self.lock = threading.Lock()
        self.texts = list(texts)

    def page(self, offset=0, limit=100):
        msgs = [{"index": i, "role": "user", "timestamp": "2026-12-01T10:00:00Z",
                 "blocks": [{"type": "text", "text": t}]} for i, t in enumerate(self.texts)][offset:offset + limit]
        end = offset + len(msgs)
        return {"messages": msgs, "total": len(self.texts), "nextOffset": end if end < len(self.texts) else None}


def test_a_message_rewritten_in_place_or_a_shorter_rewrite_is_indexed_again(tmp_path):
    path = db.path_in(tmp_path)
    w = IndexWriter(path)
    session = {"source": "opencode", "host": HOST, "projectPath": "/p"}
    conv = _Messages(["alpha words", "beta stream partial"])
    assert w.index("h1:opencode:s1", session, conv) == 2
    conv.texts[1] = "beta stream complete answer"  # the last message grew
    assert w.index("h1:opencode:s1", session, conv) == 1
    assert query.search(path, "partial")["hits"] == []
    assert [h["messageIndex"] for h in query.search(path, "complete")["hits"]] == [1]
    conv.texts = ["gamma rewritten"]  # shorter: rewritten whole
    assert w.index("h1:opencode:s1", session, conv) == 1
    assert query.search(path, "alpha")["hits"] == [] and query.search(path, "beta")["hits"] == []
    assert query.search(path, "gamma")["total"] == 1
    w.drop("h1:opencode:s1")
    assert query.search(path, "gamma")["hits"] == []
    assert int(db.meta(w.conn)["orphans"]) == 4  # postings without a document: never shown


def test_a_secret_is_found_neither_by_its_text_nor_a_prefix(indexed):
    catalog, writer, path = indexed
    key, file = _claude_file(catalog)
    secret = "sk-ant-api03-Zq8vKp2LmW9xRt4YbN7cJd3F"
    password = "Hunter2Quokka77"
    with file.open("a") as f:
        f.write(_user_record(file, f"deploy with key {secret} and password={password} please", "u-secret-1"))
    catalog.apply(str(file))
    writer.index(key, catalog.session(key), catalog.conversation(key))
    found = query.search(path, "deploy please")
    assert found["total"] == 1 and secret not in found["hits"][0]["snippet"]
    assert password not in found["hits"][0]["snippet"]
    for probe in (secret, secret[len("sk-ant-api03-"):], "Zq8", "Zq8vKp", "Hunter2Quokka77", "Hunter2", "Hun", "quokka"):
        assert query.search(path, probe)["total"] == 0, probe
    writer.close()
    raw = b"".join(Path(path + suffix).read_bytes() for suffix in ("", "-wal") if Path(path + suffix).exists())
    assert b"Zq8vKp2LmW9xRt4YbN7cJd3F" not in raw and b"Hunter2Quokka77" not in raw.lower() + raw


@pytest.mark.parametrize("q", ['"', "*", "foo AND", "NEAR(a b)", "text: foo", "{text} : x", "^start", "a OR",
                               '"unclosed phrase', "-x", "(((", "col:*", "\u0000", "\ufffd\ufffd", "x" * 999,
                               "a b c d e f", "'; DROP TABLE docs; --"])
def test_fts_syntax_in_a_query_is_words_or_a_clear_error(indexed, q):
    _catalog, _writer, path = indexed
    try:
        answer = query.search(path, q)
    except query.QueryError as exc:
        assert str(exc)
    else:
        assert isinstance(answer["hits"], list) and answer["total"] >= 0


def test_a_long_query_or_bad_limits_are_refused():
    for kwargs in ({"q": "x" * 1001}, {"q": " ".join(["w"] * 40)}):
        with pytest.raises(query.QueryError):
            query.parse(kwargs["q"])
    assert query.parse("json.loads").phrases == [["json", "loads"]]
    assert query.parse("mig").prefix and not query.parse("mi").prefix and not query.parse("mig ").prefix


def test_an_index_of_another_format_or_corrupt_is_built_again(tmp_path):
    path = db.path_in(tmp_path)
    w = IndexWriter(path)
    w.index("h1:codex:s", {"source": "codex"}, _Messages(["kept words"]))
    w.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 999 WHERE name = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(db.IndexUnavailable):
        query.search(path, "kept")
    w = IndexWriter(path)  # rebuilt empty
    assert w.known_keys() == set() and query.search(path, "kept")["total"] == 0
    w.close()
    Path(path).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    with pytest.raises(db.IndexUnavailable):
        query.search(path, "kept")
    w = IndexWriter(path)
    w.index("h1:codex:s", {"source": "codex"}, _Messages(["again"]))
    assert query.search(path, "again")["total"] == 1
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_many_dropped_documents_ask_for_a_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "REBUILD_MIN", 10)
    w = IndexWriter(db.path_in(tmp_path))
    for n in range(5):
        w.index(f"h1:codex:s{n}", {"source": "codex"}, _Messages([f"w{n} {i}" for i in range(5)]))
    assert not w.needs_rebuild()
    for n in range(3):
        w.drop(f"h1:codex:s{n}")
    assert w.needs_rebuild()
    w = w.rebuild()
    assert w.known_keys() == set() and not w.needs_rebuild()


# ------------------------------------------------------------------ a real server and indexer

def _search(srv, q: str, **params):
    url = srv.url + "/api/search?" + urllib.parse.urlencode({"q": q, **params})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _raw(srv, target: str, headers=None):
    req = urllib.request.Request(srv.url + target, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:  # gunicorn itself refuses a request line over 4 KB, in plain text
            return exc.code, {"error": body.decode(errors="replace")}


def _indexer_pids(srv) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"helm_monitor.search.indexer --cache-dir {srv.extra_env['HELM_CACHE_DIR']}"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture
def search_server(tmp_path, sample_dir, server_factory):
    claude = sample_dir("claude-code-2.1.330")
    return server_factory(claude, env={"HELM_CACHE_DIR": str(tmp_path / "cache")}), claude


def test_the_server_finds_what_is_written_and_follows_appends(search_server):
    srv, claude = search_server
    status, first = wait_until(lambda: (r := _search(srv, "hello"))[0] == 200 and r[1]["hits"] and r, 20, 0.1,
                               "the index to be built")
    assert first["total"] >= 1 and first["tookMs"] >= 0
    sessions = {s["key"] for s in srv.get_json("/api/sessions/all")}
    assert all(h["key"] in sessions for h in first["hits"])
    before = wait_until(lambda: (h := srv.get_json("/healthz")["search"])["state"] == "ready" and h, 10, 0.1,
                        "the index to say it is ready")
    file = max((claude / "projects").glob("*/*.jsonl"), key=lambda p: p.stat().st_size)
    with file.open("a") as f:
        f.write(_user_record(file, "the quixotic flamingo refactor", "u-live-1"))
    began = time.monotonic()
    _status, answer = wait_until(lambda: (r := _search(srv, "quixotic flamingo"))[1].get("hits") and r, 10, 0.05,
                                 "the append to be searchable")
    assert time.monotonic() - began < 5
    hit = answer["hits"][0]
    assert hit["key"].endswith(file.stem) and hit["snippet"] == "the quixotic flamingo refactor"
    detail = srv.get_json(f"/api/sessions/{hit['key']}?offset={hit['messageIndex']}&limit=1")
    assert detail["messages"][0]["index"] == hit["messageIndex"]
    assert "flamingo" in json.dumps(detail["messages"][0]["blocks"])
    health = wait_until(lambda: (h := srv.get_json("/healthz")["search"])["documents"] == before["documents"] + 1 and h,
                        10, 0.1, "/healthz to count the appended message")
    assert health["running"] and health["state"] == "ready" and health["sessions"] == len(sessions)


@pytest.mark.parametrize("target", ["/api/search", "/api/search?q=", "/api/search?q=%20%20", "/api/search?q=%2A",
                                    "/api/search?q=%22", "/api/search?q=%ff%fe%fd", "/api/search?q=a&limit=0",
                                    "/api/search?q=a&limit=x", "/api/search?q=a&offset=-1", "/api/search?q=a&from=soon",
                                    "/api/search?q=a&sort=sideways", "/api/search?q=" + "y" * 10_000, "/api/search?q=" + "y" * 3_000,
                                    "/api/search?q=NEAR(a%20b)%20AND%20%7Btext%7D", "/api/search?q=%00"])
def test_hostile_queries_get_a_clear_400_or_a_result(search_server, target):
    srv, _claude = search_server
    wait_until(lambda: _search(srv, "hello")[0] == 200, 20, 0.1, "the index")
    status, body = _raw(srv, target)
    if len(target) > 4094:  # past gunicorn's request-line limit: refused before the app, as too long
        assert status == 414, (status, body)
        return
    assert status in (200, 400), (status, body)
    assert ("error" in body) if status == 400 else isinstance(body["hits"], list)


def test_the_indexer_is_restarted_when_it_dies_and_stops_with_the_server(search_server):
    srv, _claude = search_server
    pids = wait_until(lambda: _indexer_pids(srv), 20, 0.1, "the indexer to start")
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    new = wait_until(lambda: [p for p in _indexer_pids(srv) if p not in pids], 20, 0.1, "the indexer to restart")
    assert srv.get_json("/healthz")["search"]["restarts"] == 1
    wait_until(lambda: _search(srv, "hello")[0] == 200, 20, 0.1, "search after the restart")
    srv.stop()
    wait_until(lambda: not _indexer_pids(srv), 10, 0.1, "the indexer to stop with the server")
    assert new


def _hits(srv, q: str) -> list[dict] | None:
    status, body = _search(srv, q)
    return body["hits"] if status == 200 else None


def test_a_deleted_transcript_is_no_longer_found(search_server):
    """Transcripts hold secrets: a file the user removed must not stay findable (nor its hits
    point at a session that is gone)."""
    srv, claude = search_server
    file = max((claude / "projects").glob("*/*.jsonl"), key=lambda p: p.stat().st_size)
    with file.open("a") as f:
        f.write(_user_record(file, "the xylophonic pelican migration", "u-del-1"))
    wait_until(lambda: _hits(srv, "xylophonic pelican"), 20, 0.1, "the session to be searchable")
    wait_until(lambda: srv.get_json("/healthz")["search"]["state"] == "ready", 10, 0.1, "the index to be ready")
    file.unlink()
    wait_until(lambda: _hits(srv, "xylophonic pelican") == [], 10, 0.1, "the deleted session to drop out")
    assert srv.get_json("/healthz")["search"]["sessions"] == len(srv.get_json("/api/sessions/all"))


def test_the_index_is_built_again_when_the_cache_directory_is_deleted(search_server):
    srv, claude = search_server
    wait_until(lambda: _hits(srv, "hello"), 20, 0.1, "the index to be built")
    cache = Path(srv.extra_env["HELM_CACHE_DIR"])
    shutil.rmtree(cache)
    file = max((claude / "projects").glob("*/*.jsonl"), key=lambda p: p.stat().st_size)
    with file.open("a") as f:
        f.write(_user_record(file, "the zeppelin armadillo handover", "u-gone-1"))
    # What was indexed before and what was written after are both found in the new file.
    wait_until(lambda: _hits(srv, "zeppelin armadillo"), 20, 0.1, "the write after the deletion to be found")
    assert _hits(srv, "hello")
    assert (cache / "search.db").stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    assert srv.log().count("was removed; building it again") == 1, srv.log()
    assert srv.get_json("/healthz")["search"]["restarts"] == 0


def test_search_is_off_without_a_cache_directory_and_needs_the_token(tmp_path, sample_dir, server_factory):
    claude = sample_dir("claude-code-2.1.330")
    off = server_factory(claude)  # HELM_CACHE_DIR empty: no cache, no index
    assert _search(off, "hello")[0] == 501
    guarded = server_factory(claude, args=["--token", "s3cret-token-value"],
                             env={"HELM_CACHE_DIR": str(tmp_path / "cache2")})
    assert _raw(guarded, "/api/search?q=hello")[0] == 401
    status, _ = wait_until(lambda: (r := _raw(guarded, "/api/search?q=hello",
                                              {"Authorization": "Bearer s3cret-token-value"}))[0] == 200 and r,
                           20, 0.1, "an authorised search")
    assert status == 200
