"""The floor under bench/team.py: what moving its bytes over loopback costs this machine.

    .venv/bin/python bench/wire_floor.py [--clients 2000] [--kb 37] [--rate 20] [--seconds 10] [--quick]

bench/team.py at 2,000 clients moves ~1.5 GB/s of SSE (2,000 clients x 20 batches/s x ~37 KB:
500 session versions/s of ~1.5 KB, whole, as SPEC 4 requires). This does only that, in the
leanest Python there is: ``--senders`` processes each hold a share of the connections and, every
1/rate s, write the same prepared block to each with one non-blocking ``send`` (the rest when the
socket has room, as the web tier's direct delivery does); ``--receivers`` processes read every
socket with ``recv_into`` under one epoll loop and stamp when each block's last byte arrives.
No framing, JSON, store or checks: whatever the server and the clients do on top costs more.

Reported: CPU of the senders and of the receivers (% of one core, user + system, from
``os.times``), the machine's own busy share over the run (/proc/stat: softirq included), and
latency from a batch's start to each block's last byte at each client (p50 / p99 / max), the
same measure as team.py's write -> browser without the engine in between.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct, system_cpu, system_cpu_pct, write_results  # noqa: E402


def cpu_times() -> float:
    t = os.times()
    return t.user + t.system


def sender(port: int, n: int, block_kb: int, rate: float, seconds: float, go, out) -> None:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    block = bytes(block_kb * 1024)
    pending: dict[int, memoryview] = {}  # fd -> what is left of the current block
    by_fd = {s.fileno(): s for s in socks}
    ep = select.epoll()
    go.wait()
    cpu0 = cpu_times()
    starts = []
    start = time.monotonic()
    end = start + seconds
    k = 0
    while True:
        now = time.monotonic()
        due = start + k / rate
        if now >= end:
            break
        if now >= due:
            starts.append(now)
            k += 1
            for s in socks:
                fd = s.fileno()
                if fd in pending:  # still writing the last one: queue behind it (a server's mailbox)
                    pending[fd] = memoryview(bytes(pending[fd]) + block)
                    continue
                try:
                    sent = s.send(block)
                except BlockingIOError:
                    sent = 0
                if sent < len(block):
                    pending[fd] = memoryview(block)[sent:]
                    ep.register(fd, select.EPOLLOUT)
            continue
        for fd, _ in ep.poll(max(0.0, due - now)):
            rest = pending[fd]
            try:
                sent = by_fd[fd].send(rest)
            except BlockingIOError:
                sent = 0
            if sent == len(rest):
                del pending[fd]
                ep.unregister(fd)
            else:
                pending[fd] = rest[sent:]
    out.send({"cpu_s": cpu_times() - cpu0, "wall_s": time.monotonic() - start, "starts": starts})
    time.sleep(1.0)  # let the receivers drain before the sockets close
    for s in socks:
        s.close()


def receiver(conns: list[socket.socket], block_kb: int, seconds: float, go, out) -> None:
    size = block_kb * 1024
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got = {c.fileno(): 0 for c in conns}
    by_fd = {c.fileno(): c for c in conns}
    ep = select.epoll()
    for c in conns:
        c.setblocking(False)
        ep.register(c.fileno(), select.EPOLLIN)
    arrivals: list[tuple[int, float]] = []  # (block index, time its last byte came)
    go.wait()
    cpu0 = cpu_times()
    end = time.monotonic() + seconds + 3.0
    open_fds = len(conns)
    while open_fds and time.monotonic() < end:
        for fd, _ in ep.poll(0.5):
            try:
                n = by_fd[fd].recv_into(view)
            except BlockingIOError:
                continue
            if n == 0:
                ep.unregister(fd)
                open_fds -= 1
                continue
            before = got[fd]
            got[fd] = before + n
            whole = got[fd] // size
            if whole > before // size:
                t = time.monotonic()
                for k in range(before // size, whole):
                    arrivals.append((k, t))
    out.send({"cpu_s": cpu_times() - cpu0, "arrivals": arrivals, "bytes": sum(got.values())})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--kb", type=int, default=37, help="one batch's message to one client")
    ap.add_argument("--rate", type=float, default=20.0, help="batches per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--receivers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="100 clients for 2 s (the smoke test)")
    a = ap.parse_args(argv)
    if a.quick:
        a.clients, a.seconds = 100, 2.0

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4096)
    port = lst.getsockname()[1]
    ctx = mp.get_context("fork")
    go = ctx.Event()
    shares = [a.clients // a.senders + (i < a.clients % a.senders) for i in range(a.senders)]
    send_pipes, procs = [], []
    for n in shares:
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=sender, args=(port, n, a.kb, a.rate, a.seconds, go, w))
        p.start()
        send_pipes.append(r)
        procs.append(p)
    accepted = [lst.accept()[0] for _ in range(a.clients)]
    recv_pipes = []
    for i in range(a.receivers):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=receiver, args=(accepted[i::a.receivers], a.kb, a.seconds, go, w))
        p.start()
        recv_pipes.append(r)
        procs.append(p)
    for c in accepted:
        c.close()  # the receivers hold their own copies
    time.sleep(0.5)
    stat0 = system_cpu()
    go.set()
    sends = [r.recv() for r in send_pipes]
    stat1 = system_cpu()
    recvs = [r.recv() for r in recv_pipes]
    for p in procs:
        p.join(10)

    # Every sender starts its batches on the same schedule (go, then k / rate): batch k's start
    # is the earliest of the senders' k-th starts.
    starts = [min(s["starts"][k] for s in sends if k < len(s["starts"])) for k in range(max(len(s["starts"]) for s in sends))]
    lat = sorted((t - starts[k]) * 1000 for r in recvs for k, t in r["arrivals"] if k < len(starts))
    wall = max(s["wall_s"] for s in sends)
    expected = sum(n * len(s["starts"]) for n, s in zip(shares, sends))  # each sender's clients, its batches
    res = {
        "quick": a.quick, "settings": vars(a),
        "offered_mb_s": round(a.clients * a.kb * 1024 * a.rate / 1e6, 1),
        "delivered_blocks": len(lat), "expected_blocks": expected,
        "received_mb_s": round(sum(r["bytes"] for r in recvs) / 1e6 / wall, 1),
        "cpu_pct_of_core": {"senders": round(sum(s["cpu_s"] for s in sends) / wall * 100, 1),
                            "receivers": round(sum(r["cpu_s"] for r in recvs) / wall * 100, 1)},
        "machine_cpu_pct_of_core": system_cpu_pct(stat0, stat1),
        "latency_ms": {"p50": round(pct(lat, 50), 1), "p99": round(pct(lat, 99), 1), "max": round(lat[-1], 1)} if lat else None,
    }
    out = write_results("wire_floor", res)
    print(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
