"""The saved parse state between restarts, kept outside every agent's data directory.

A restart over an unchanged history then reads nothing but directory
listings. Each source's state is a file of its own (named by the source and
its data directory), versioned and written atomically; a stale entry is used
only where its file still matches (the source checks, e.g.
helm_monitor.sources.claude.state), and a corrupt file, or one from another
version, is ignored and replaced.

A cache that cannot be written (read-only, full, deleted) costs only the next
start's speed: the failure is logged once, not at every save, the last good
file stays in place, and saving goes on trying.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import tempfile
import time

import orjson

from helm_monitor import __version__
from helm_monitor.sources.base import Source

log = logging.getLogger(__name__)

MAX_CACHE_BYTES = 512 * 1024 * 1024
# A temporary file this old is a killed save's leftover, not a save under way (one takes seconds).
LEFTOVER_AGE_S = 600.0


class StateCache:
    """One source's saved state."""

    def __init__(self, cache_dir: str | os.PathLike, root: str, name: str = "claude-code"):
        cache_dir = os.path.realpath(os.fspath(cache_dir))
        root = os.path.realpath(root)
        self.enabled = True
        if cache_dir == root or cache_dir.startswith(root + os.sep):
            log.warning("cache directory %s is inside the %s data directory; not caching it (it is never written)",
                        cache_dir, name)
            self.enabled = False
        digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.dir = cache_dir
        self.path = os.path.join(cache_dir, f"state-{name}-{digest}.json")
        # Temporary files of this cache only: another root's cache may share the directory.
        self._tmp_prefix = f".state-{name}-{digest}-"
        self._failing: str | None = None  # why the last save failed, once logged

    def load_into(self, catalog: Source) -> int:
        if not self.enabled:
            return 0
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_CACHE_BYTES + 1)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("cannot read cache %s: %s; reading everything", self.path, exc.strerror)
            return 0
        try:
            if len(data) > MAX_CACHE_BYTES:
                raise ValueError("too large")
            doc = orjson.loads(data)
            if not isinstance(doc, dict) or doc.get("helm") != __version__:
                log.info("cache %s is from another version; reading everything", self.path)
                return 0
            restored = catalog.restore_state(doc.get("state"))
        except (ValueError, TypeError) as exc:
            log.warning("cache %s is unusable (%s); reading everything", self.path, exc)
            return 0
        log.info("restored parse state of %d transcripts from %s", restored, self.path)
        return restored

    def save(self, catalog: Source) -> bool:
        if not self.enabled:
            return False
        exported = catalog.export_state()
        if exported is None:
            return False
        doc = {"helm": __version__, "state": exported}
        try:
            if not os.path.isdir(self.dir):
                log.info("cache directory %s is missing; creating it", self.dir)
                os.makedirs(self.dir, mode=0o700, exist_ok=True)
            self._remove_leftovers()
            fd, tmp = tempfile.mkstemp(prefix=self._tmp_prefix, dir=self.dir)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(orjson.dumps(doc))
                    f.flush()
                    # On disk before it replaces the last good file: a crash never leaves a cut one.
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):  # the directory may be gone: report the first error
                    os.unlink(tmp)
                raise
        except OSError as exc:
            why = exc.strerror or str(exc)
            if why != self._failing:
                self._failing = why
                log.warning("cannot write cache %s: %s; the last saved state (if any) is kept and saving is "
                            "retried at each save (the next start reads what changed since then)", self.path, why)
            return False
        if self._failing is not None:
            log.info("cache %s written again", self.path)
            self._failing = None
        return True

    def _remove_leftovers(self) -> None:
        """Temporary files a killed save left behind: on a small file system they would keep it full."""
        for leftover in glob.glob(os.path.join(glob.escape(self.dir), glob.escape(self._tmp_prefix) + "*")):
            with contextlib.suppress(OSError):
                if time.time() - os.stat(leftover).st_mtime > LEFTOVER_AGE_S:
                    os.unlink(leftover)


class StateCaches:
    """The saved state of every source of a :class:`~helm_monitor.live.sources.SourceSet`."""

    def __init__(self, cache_dir: str | os.PathLike, sources):
        self._caches = [(s, StateCache(cache_dir, s.root, s.name)) for s in sources.sources]

    def load_into(self, _sources=None) -> int:
        return sum(cache.load_into(source) for source, cache in self._caches)

    def any_saved(self) -> bool:
        """Some source has a saved state (a restart: it reads little)."""
        return any(cache.enabled and os.path.exists(cache.path) for _source, cache in self._caches)

    def save(self, _sources=None) -> bool:
        ok = True
        for source, cache in self._caches:
            try:
                ok = cache.save(source) and ok
            except Exception:  # one source's export bug must not stop the others' saves
                log.exception("saving the parse state of %s failed", source.name)
                ok = False
        return ok
