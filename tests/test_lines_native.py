"""The C triage of transcript lines (helm_monitor/sources/claude/_lines.c) against the reader's
own Python tests of the same lines (TranscriptReader._skippable, _wanted_start).

The C part is optional at install time; this project's own setup (scripts/test.sh) has a
compiler, so here it must have been built: a reader silently back on Python would leave the
C path untested. Every reader test of tests/test_transcript.py, test_bad_input.py and
test_usage_claude.py also runs both ways (the ``triage`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import mmap
import random

import pytest

from helm_monitor.sources.claude import transcript as T

_lines = T._lines

LITERALS = [
    b'{"type":"', b'{"type":"user"', b'{"type":"assistant"', b'{"type":"summary"', b'{"type":"ai-title"',
    b'{"type":"custom-title"', b'{"type":"agent-name"', b'{"type":"cost-state"', b'{"type":"cost-state',
    b'{"type":"attachment"', b'{"type":"user', b'{"type":"users"', b'"parentUuid":', b'{"parentUuid":',
    b'{"parentUuid":null', b'"type":"attachment","uuid":"u1","timestamp":"2026-11-30T10:00:00.000Z"',
    b'"', b'{', b'}', b',', b'\\"', b'x' * 7, b'\xc3\xa9', b'\xff',
]
HEADS = [
    b'{"type":"file-history-snapshot","messageId":"m"', b'{"type":"queue-operation"', b'{"type":"user",',
    b'{"type":"assistant",', b'{"type":"cost-state","totalCostUSD":1', b'{"type":"summary","summary":"s"',
    b'{"type":"' + b"a" * 54 + b'"', b'{"type":"' + b"a" * 55 + b'"', b'{"type":"' + b"a" * 56 + b'"',
    b'{"parentUuid":null,"isSidechain":false,"attachment":',
    b'{"parentUuid":"' + b"p" * 80 + b'","isSidechain":true,"attachment":',
    b'{"parentUuid":"' + b"p" * 81 + b'","isSidechain":true,"attachment":',
    b'{"parentUuid":"p","isSidechain":maybe,"attachment":', b'{"parentUuid":"p","isSidechain":false,"message":',
    b'{"parentUuid":"' + b"p" * 40 + b'","isSidechain":false,' + b" " * 440 + b'"attachment":',
    b'{"parentUuid":"' + b"p" * 40 + b'","isSidechain":false,' + b" " * 460 + b'"attachment":',
    b'', b' ', b'[1,2]', b'{"type"',
]


def reference(buf, start: int) -> tuple[list[int], int]:
    """What the reader's Python makes of each complete line of ``buf`` from ``start``."""
    flat = []
    while True:
        nl = buf.find(b"\n", start)
        if nl < 0:
            return flat, start
        if nl > start:
            if not T.TranscriptReader._skippable(buf, start, nl):
                kind = _lines.RECORD
            elif buf.startswith(T._COST_STATE, start):
                kind = _lines.OTHER
            else:
                kind = _lines.OTHER if T._wanted_start(buf, start + 1, nl) >= 0 else _lines.SKIP
            flat += [kind, start, nl]
        start = nl + 1


def random_line(rnd: random.Random) -> bytes:
    parts = [rnd.choice(HEADS)]
    for _ in range(rnd.randrange(0, 12)):
        r = rnd.random()
        if r < 0.45:
            parts.append(rnd.choice(LITERALS))
        elif r < 0.8:
            parts.append(b"y" * rnd.choice([1, 3, 13, 50, 400, 1000, 1010, 1024, 1030, 3000]))
        else:
            parts.append(bytes(rnd.randrange(32, 127) for _ in range(rnd.randrange(1, 30))))
    return b"".join(parts)


def test_the_c_triage_is_built():
    assert _lines is not None, "helm_monitor/sources/claude/_lines.c was not built (pip install -e . needs a C compiler)"
    assert T._triage is _lines.lines


@pytest.mark.skipif(_lines is None, reason="not built (test_the_c_triage_is_built fails)")
@pytest.mark.parametrize("seed", range(40))
def test_every_line_is_sorted_as_the_python_reader_sorts_it(seed):
    rnd = random.Random(seed)
    lines = [random_line(rnd) for _ in range(60)]
    buf = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    for start in (0, 1, rnd.randrange(len(buf))):
        got = _lines.lines(buf, start)
        assert got == reference(buf, start)
        # the same over a mapped window and a bytearray, the other kinds of chunk the reader holds
        assert _lines.lines(bytearray(buf), start) == got
        with mmap.mmap(-1, len(buf)) as m:
            m.write(buf)
            assert _lines.lines(m, start) == got


@pytest.mark.skipif(_lines is None, reason="not built (test_the_c_triage_is_built fails)")
def test_kinds_of_real_records():
    attachment = (b'{"parentUuid":"a","isSidechain":false,"attachment":{"type":"file","content":"'
                  + b"z" * 5000 + b'"},"type":"attachment","uuid":"u","timestamp":"2026-11-30T10:00:00.000Z"}')
    user = b'{"parentUuid":null,"isSidechain":false,"type":"user","message":{"role":"user","content":"hi"}}'
    glued = attachment[:3000] + b'{"type":"ai-title","aiTitle":"t"}'
    nested = attachment[:100] + b'{"parentUuid":"x"' + attachment[100:]
    cost = b'{"type":"cost-state","totalCostUSD":0.5}'
    buf = b"\n".join([attachment, user, b"", glued, nested, cost, b'{"type":"permission-mode"'])
    flat, rest = _lines.lines(buf, 0)
    kinds = flat[0::3]
    assert kinds == [_lines.SKIP, _lines.RECORD, _lines.OTHER, _lines.OTHER, _lines.OTHER]
    assert rest == buf.rindex(b"\n") + 1  # the unfinished last line is the caller's to hold
    assert flat[1:3] == [0, len(attachment)]
    assert _lines.lines(buf, len(buf)) == ([], len(buf))
    assert _lines.lines(b"", 0) == ([], 0)
    with pytest.raises(TypeError):
        _lines.lines("text", 0)
