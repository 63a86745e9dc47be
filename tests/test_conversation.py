"""Conversation paging: incremental index, rewritten files, concurrent viewers."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import orjson

from helm_monitor.sources.claude.conversation import Conversation


def texts(page):
    return [m["blocks"][0]["text"] for m in page["messages"]]


def prompted(claude, cwd: str, n: int):
    """A session of ``n`` prompts ("prompt 0"...) and its conversation, indexed once."""
    s = claude.session(cwd)
    for i in range(n):
        s.prompt(f"prompt {i}")
    conv = Conversation(str(s.path))
    assert conv.page(0, 100)["total"] == n
    return s, conv


def test_tail_rewritten_and_grown_back_is_reindexed(claude):
    s, conv = prompted(claude, "/w/conv", 10)
    lines = s.path.read_bytes().splitlines(keepends=True)
    with open(s.path, "r+b") as f:  # Claude Code removed the last messages in place...
        f.truncate(sum(len(x) for x in lines[:7]))
    for i in range(100, 104):  # ...and the session went on past the old size
        s.prompt(f"prompt {i}")
    page = conv.page(0, 100)
    assert texts(page) == [f"prompt {i}" for i in [*range(7), *range(100, 104)]]
    assert page["total"] == 11


def test_long_lines_across_read_chunks_are_indexed_once(claude):
    s = claude.session("/w/long")
    s.prompt("short")
    s.prompt("x" * 9_000_000)  # longer than two read chunks
    s.prompt("after")
    conv = Conversation(str(s.path))
    page = conv.page(0, 10)
    assert page["total"] == 3 and texts(page)[2] == "after"
    assert len(texts(page)[1]) < 30_000  # shown clipped
    s.prompt("later")
    assert texts(conv.page(3, 10)) == ["later"]


def test_parallel_viewers_of_one_session_see_the_same_conversation(claude, server_factory):
    s = claude.session("/w/busy")
    records = []
    for i in range(3000):
        records.append(s.prompt_record(f"hello {i}"))
    s.write(*records)
    server = server_factory(claude.root)
    results = []

    def fetch():
        results.append(server.get_json(f"/api/claude-sessions/{s.id}?offset=2990&limit=100", timeout=30))

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    for page in results:
        assert page["total"] == 3000
        assert texts(page) == [f"hello {i}" for i in range(2990, 3000)]


def test_head_on_the_stream_subscribes_nobody(claude, server_factory):
    server = server_factory(claude.root, args=["--max-clients", "2"])
    for _ in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("HEAD", "/api/claude-sessions/stream")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
        conn.close()
    assert server.get_json("/healthz")["clients"] == 0
    from tests.support.sse import SSEClient
    with SSEClient(server.url) as client:
        assert client.status == 200 and client.next_event(3).type == "init"


def test_an_idle_keepalive_connection_does_not_hold_a_stopping_worker(claude, server_factory):
    server = server_factory(claude.root)
    idle = socket.create_connection(("127.0.0.1", server.port))
    idle.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    assert b"200 OK" in idle.recv(65536)
    # The connection stays open, idle, as a browser or nginx leaves it.
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 3.0
    idle.close()


FIXTURES = Path(__file__).parent / "fixtures"


def _decoded_check(line: bytes, sidechain: bool) -> bool:
    """What the index held before it told messages by their bytes: every line decoded."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(rec, dict) and rec.get("type") in ("user", "assistant") and (
        sidechain or rec.get("isSidechain") is not True)


def test_messages_told_by_their_bytes_are_the_decoded_ones_over_every_real_transcript():
    lines = 0
    for path in sorted(FIXTURES.glob("claude-code-*/**/*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line:
                continue
            lines += 1
            for sidechain in (False, True):
                assert Conversation._is_message(line, 0, len(line), sidechain) == _decoded_check(line, sidechain), (
                    path.name, line[:120])
    assert lines > 200


def test_a_torn_record_that_starts_like_a_message_is_left_out_and_its_neighbours_shown(claude):
    s = claude.session("/w/torn")
    s.prompt("before")
    whole = json.dumps(s.prompt_record("torn"), separators=(",", ":")).encode()
    with open(s.path, "ab") as f:  # a crash mid-write, then the CLI went on on a new line
        f.write(whole[: len(whole) // 2] + b"\n")
    assert Conversation._is_message(whole[: len(whole) // 2], 0, len(whole) // 2)  # by its first bytes
    s.prompt("after")
    conv = Conversation(str(s.path))
    page = conv.page(0, 100)
    assert texts(page) == ["before", "after"]
    assert page["total"] == 2 and [m["index"] for m in page["messages"]] == [0, 1]
    s.prompt("later")
    assert texts(conv.page(2, 10)) == ["later"]


def test_a_line_rewritten_in_place_to_the_same_size_is_reindexed(claude):
    s, conv = prompted(claude, "/w/inplace", 5)
    data = s.path.read_bytes()
    lines = data.splitlines(keepends=True)
    # The first two records swap places: same size, same last bytes, other offsets.
    swapped = lines[1] + lines[0] + b"".join(lines[2:])
    assert len(swapped) == len(data) and len(lines[0]) != len(lines[1])
    s.path.write_bytes(swapped)
    page = conv.page(0, 10)
    assert page["total"] == 5 and sorted(texts(page)) == sorted(f"prompt {i}" for i in range(5))
