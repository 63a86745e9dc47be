"""What /proc says about agents' processes, read without touching them (Linux).

- :func:`flock_holders`: which pid holds a ``flock`` on which file, from
  ``/proc/locks`` (never by taking the lock: trying it would briefly hold it
  and could make the agent fail to take its own).
- :func:`agent_processes`: processes of an agent (by their command line) and
  the directory each works in (``/proc/<pid>/cwd``); :func:`without_children`
  drops those whose parent is one of them (an agent relaunching itself).

Both answer "nothing known" rather than raise: another user's processes are
not readable (their cwd is skipped), and a kernel without /proc answers empty.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple


class Process(NamedTuple):
    pid: int
    cwd: str
    argv: tuple[str, ...]


def file_id(st: os.stat_result) -> tuple[int, int, int]:
    """``(major, minor, inode)`` of a file, as /proc/locks names it."""
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def flock_holders(proc_root: str = "/proc") -> dict[tuple[int, int, int], int]:
    """``(major, minor, inode)`` -> pid for every FLOCK lock granted now (waiters ``->`` skipped)."""
    try:
        with open(os.path.join(proc_root, "locks"), "rb") as f:
            data = f.read()
    except OSError:
        return {}
    out: dict[tuple[int, int, int], int] = {}
    for line in data.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a blocked waiter has "->" after its number
        parts = line.split()
        if len(parts) < 6 or parts[1] == b"->" or parts[1] != b"FLOCK":
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(b":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        out.setdefault(key, pid)
    return out


def agent_processes(matches: Callable[[tuple[str, ...]], bool], proc_root: str = "/proc") -> list[Process]:
    """Every readable process whose argv ``matches``, with its working directory."""
    out = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        base = os.path.join(proc_root, name)
        try:
            with open(base + "/cmdline", "rb") as f:
                raw = f.read(8192)
        except OSError:
            continue
        if not raw:
            continue  # a kernel thread or a zombie
        argv = tuple(os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0"))
        if not matches(argv):
            continue
        try:
            cwd = os.readlink(base + "/cwd")
        except OSError:
            continue
        out.append(Process(int(name), cwd, argv))
    return out


_INTERPRETERS = ("node", "nodejs", "bun", "deno", "python", "python3")


def program_is(argv: tuple[str, ...], *names: str) -> bool:
    """The program (argv[0], or a script run by an interpreter such as node) is one of ``names``.

    ``names`` are base names: "opencode" matches ``/usr/bin/opencode`` and
    ``node /usr/lib/node_modules/opencode-ai/bin/opencode``; "gemini" matches
    ``node --max-old-space-size=8192 --no-warnings=DEP0040 …/bundle/gemini.js``.
    """
    if not argv:
        return False
    candidates = [argv[0]]
    if os.path.basename(argv[0]) in _INTERPRETERS and len(argv) > 1:
        candidates += [a for a in argv[1:3] if not a.startswith("-")]
        # the script behind a run of interpreter options (gemini relaunches node with several)
        script = next((a for a in argv[1:8] if not a.startswith("-")), None)
        if script is not None:
            candidates.append(script)
    for c in candidates:
        base = os.path.basename(c)
        for n in names:
            if base == n or base == n + ".js" or base == n + ".mjs":
                return True
    return False


def parent_pid(pid: int, proc_root: str = "/proc") -> int | None:
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read(1024)
        # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")"
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def without_children(procs: list[Process], proc_root: str = "/proc") -> list[Process]:
    """``procs`` less those whose parent is among them: an agent that relaunches itself in a child
    (gemini does, to raise node's heap limit) is one instance, not two."""
    if len(procs) < 2:
        return procs
    pids = {p.pid for p in procs}
    return [p for p in procs if parent_pid(p.pid, proc_root) not in pids]
