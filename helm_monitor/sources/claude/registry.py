"""The live-process registry: ``sessions/<pid>.json`` (Claude Code 2.1.75 and later).

A file names a running process and its session. It is rewritten in place, so
a reader can catch it empty or half written: :func:`read_entry` raises
:class:`Incomplete` and the caller retries later. A pid is believed alive only
if ``/proc/<pid>/stat`` exists and, where the file gives ``procStart``, its
start time (field 22) matches: otherwise the pid was reused.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import orjson

KNOWN_STATUSES = ("busy", "waiting", "idle")
MAX_REGISTRY_BYTES = 1024 * 1024


class Incomplete(ValueError):
    """The file is empty, half written or not the shape of a registry entry (yet)."""


@dataclass(frozen=True)
class RegistryEntry:
    pid: int
    session_id: str
    status: str | None  # as written; None when the version writes none
    proc_start: str | None
    version: str | None
    cwd: str | None
    updated_at: int  # epoch ms, 0 if unknown

    @property
    def effective_status(self) -> str:
        """SPEC 5: shell, missing or unknown statuses count as idle."""
        return self.status if self.status in KNOWN_STATUSES else "idle"


def read_entry(path: str, pid_from_name: int) -> RegistryEntry:
    with open(path, "rb") as f:
        data = f.read(MAX_REGISTRY_BYTES + 1)
    if not data.strip():
        raise Incomplete("empty")
    if len(data) > MAX_REGISTRY_BYTES:
        raise Incomplete("too large for a registry file")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Incomplete(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Incomplete("not a JSON object")
    session_id = obj.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise Incomplete("no sessionId")
    pid = obj.get("pid", pid_from_name)
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise Incomplete("no valid pid")
    proc_start = obj.get("procStart")
    if isinstance(proc_start, int) and not isinstance(proc_start, bool):
        proc_start = str(proc_start)
    status = obj.get("status")
    updated = obj.get("statusUpdatedAt", obj.get("updatedAt"))
    return RegistryEntry(
        pid=pid,
        session_id=session_id,
        status=status if isinstance(status, str) else None,
        proc_start=proc_start if isinstance(proc_start, str) and proc_start else None,
        version=obj.get("version") if isinstance(obj.get("version"), str) else None,
        cwd=obj.get("cwd") if isinstance(obj.get("cwd"), str) else None,
        updated_at=updated if isinstance(updated, int) and not isinstance(updated, bool) else 0,
    )


def process_start_time(pid: int, proc_root: str = "/proc") -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), or None if no such process."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain anything.
    try:
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] == b"Z":  # a zombie has exited
            return None
        return fields[19].decode("ascii")
    except (ValueError, IndexError):
        return None


def is_alive(entry: RegistryEntry, proc_root: str = "/proc") -> bool:
    if os.path.isdir(proc_root + "/self"):
        started = process_start_time(entry.pid, proc_root)
        if started is None:
            return False
        return entry.proc_start is None or entry.proc_start == started
    # Not Linux: no start time to compare, ask the kernel whether the pid exists.
    try:
        os.kill(entry.pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
