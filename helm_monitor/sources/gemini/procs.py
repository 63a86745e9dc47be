"""Running Gemini CLI instances, by the directory each works in (from /proc; Linux).

Gemini CLI leaves nothing on disk while it runs (no pid file, no lock, no open
file under ~/.gemini): a ``gemini`` process whose working directory is the
project is the only sign of life. Its argv is ``node …/bundle/gemini.js …``
or ``…/bin/gemini …``; the CLI usually relaunches itself once in a child
process (to raise node's heap limit), so a gemini process whose parent is a
gemini process is the same instance and counted once.
"""

from __future__ import annotations

import os

from helm_monitor.sources.proc import agent_processes, program_is

_NODES = ("node", "nodejs", "bun", "deno")
_NAMES = ("gemini", "gemini.js", "gemini.mjs")


def is_gemini(argv: tuple[str, ...]) -> bool:
    if program_is(argv, "gemini"):
        return True
    # node with several options before the script: program_is looks at two arguments only
    if argv and os.path.basename(argv[0]) in _NODES:
        script = next((a for a in argv[1:8] if not a.startswith("-")), None)
        return script is not None and os.path.basename(script) in _NAMES
    return False


def _ppid(proc_root: str, pid: int) -> int | None:
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read(1024)
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def gemini_instances(proc_root: str = "/proc") -> dict[str, int]:
    """Working directory -> how many Gemini CLI instances run there (processes of other users,
    whose cwd cannot be read, are not seen)."""
    procs = agent_processes(is_gemini, proc_root)
    pids = {p.pid for p in procs}
    out: dict[str, int] = {}
    for p in procs:
        if len(procs) > 1 and _ppid(proc_root, p.pid) in pids:
            continue  # the relaunched child of a gemini process: the same instance
        out[p.cwd] = out.get(p.cwd, 0) + 1
    return out
