"""The team web tier's broadcaster: event ids are positions in the engine's streams.

Everything else (mailboxes, fan-out, status frames, the clock) is the single-host
``Broadcaster``'s; this subclass changes what an id is and what a resume can replay.
"""

from __future__ import annotations

from typing import Iterable

from helm_monitor.live.broadcaster import Broadcaster, Event, payload, sse_frame
from helm_monitor.team.keys import parse_sse_id, sse_id


class PositionBroadcaster(Broadcaster):
    """The team web tier's broadcaster: each event's id is its position in the engine's
    streams, ``<epoch>.<ms>-<seq>`` (SPEC 4 v2), so that a browser resumes on any worker.

    Positions are kept non-decreasing (one lower than the last is raised to it): the ring is
    in position order, and no id ever goes back. The ring holds the events of the last
    ``window_s`` (by the positions' clock, the engine's) and at most ``ring_max``; its floor
    is the position from which on it holds every event. A client resuming from ``T`` gets
    every held event from ``(T.ms - overlap_ms, 0)`` on: entries of two hosts in the same
    millisecond arrive in either order (design 5.4), and full objects make the duplicates
    harmless. Where that reaches below the floor but ``T`` itself does not, the replay starts
    at the floor's millisecond: the client saw everything before its id, and what it may
    lack lies after the floor, all of it held (otherwise a browser resuming within 2 s of a
    worker's start or of a host's resync would always start over). Anything else (another epoch, a malformed or
    too old id, an id further ahead than the overlap) gets ``init``.

    The floor is unknown (nothing can be replayed) until ``set_floor``, or a ``refresh``:
    a whole snapshot, not held, that no earlier event can complete, so it lets go of what
    the ring held and the floor moves up to it. At start, then, the owner publishes its
    snapshot (``replace_all(..., position=)``: a refresh), then ``preload``-s the engine's
    recent history up to it and ``set_floor``-s where that history is complete from;
    ``reset`` starts a new epoch.
    """

    def __init__(self, *, overlap_ms: int = 2000, window_s: float = 600.0, ring_max: int = 20000, **options):
        super().__init__(replay_size=None, **options)  # bounded by window_s and ring_max instead
        self._format_id, self._parse_id = sse_id, parse_sse_id
        self.overlap_ms = overlap_ms
        self.window_ms = int(window_s * 1000)
        self.ring_max = ring_max
        self._position = (0, 0)
        self._floor: tuple[int, int] | None = None  # unknown: nothing can be replayed
        self._dropped: tuple[int, int] | None = None  # just after the last event the ring let go

    @property
    def position(self) -> tuple[int, int]:
        return self._position

    def event_id(self, mark: tuple[int, int] | None = None) -> str:
        return self._format_id(self.epoch, self._position if mark is None else mark)

    def _mark_locked(self):
        return self._position

    def _record_locked(self, event_type: str, data: bytes, count: int, position) -> Event:
        position = self._advance_locked(position)
        self._seq += 1
        event = Event(self._seq, event_type, sse_frame(self.event_id(position), event_type, data), count, position)
        if event_type == "refresh":
            # Held by no one: whoever missed it gets init; everything after it is held.
            self._ring.clear()
            self._dropped = None
            self._floor = position
        else:
            self._hold_locked(event)
        return event

    def _advance_locked(self, position) -> tuple[int, int]:
        if position is not None and tuple(position) > self._position:
            self._position = (int(position[0]), int(position[1]))
        return self._position

    def _hold_locked(self, event: Event) -> None:
        self._ring.append(event)
        self._trim_locked()

    def _trim_locked(self) -> None:
        ring = self._ring
        oldest_ms = ring[-1].position[0] - self.window_ms if ring else 0
        while ring and (len(ring) > self.ring_max or ring[0].position[0] < oldest_ms):
            gone = ring.popleft().position
            self._dropped = (gone[0], gone[1] + 1)
        if self._dropped is not None and self._floor is not None and self._floor < self._dropped:
            self._floor = self._dropped

    def preload(self, items: Iterable[tuple[tuple[int, int], str, list[dict]]]) -> int:
        """Hold history that came before what the ring holds: ``(position, event type,
        sessions)`` in position order (the engine's recent entries at start, after the
        snapshot's ``refresh``); nobody is sent these. Returns how many are held."""
        history, last = [], (0, 0)
        for position, event_type, sessions in items:
            last = max(last, (int(position[0]), int(position[1])))
            frame = sse_frame(self.event_id(last), event_type, payload(event_type, sessions))
            history.append(Event(0, event_type, frame, len(sessions), last))
        with self._lock:
            if self._ring:
                history = [e for e in history if e.position <= self._ring[0].position]
            self._ring.extendleft(reversed(history))
            if history:
                self._advance_locked(history[-1].position)
            self._trim_locked()
        return len(history)

    def set_floor(self, position: tuple[int, int]) -> None:
        """Nothing before ``position`` can be replayed (every event from it on is held)."""
        with self._lock:
            floor = (int(position[0]), int(position[1]))
            self._floor = max(floor, self._dropped) if self._dropped is not None else floor

    def reset(self, epoch: str) -> None:
        """A new epoch (the engine lost its data): its positions start again, nothing is held,
        and the floor is unknown until the owner sets it or publishes a refresh."""
        with self._lock:
            self.epoch = epoch
            self._position = (0, 0)
            self._ring.clear()
            self._floor = self._dropped = None

    def _replay_locked(self, last_event_id: str | None) -> list[Event] | None:
        parsed = self._parse_id(last_event_id) if last_event_id else None
        if parsed is None or parsed[0] != self.epoch or self._floor is None:
            return None
        ms = parsed[1][0]
        if ms > self._position[0] + self.overlap_ms:
            return None  # ahead of what this worker has seen by more than the overlap covers
        start = (max(ms - self.overlap_ms, 0), 0)
        if start < self._floor:
            if parsed[1] < self._floor:
                return None  # the gap is no longer held
            # The client saw everything up to its id, which is past the floor (a worker's first
            # snapshot, a resync, a trim): what it may lack lies after the floor, all of it held.
            start = max(start, (self._floor[0], 0))  # the floor's millisecond whole: ties
        replay = []
        for event in reversed(self._ring):
            if event.position < start:
                break
            replay.append(event)
        replay.reverse()
        return replay
