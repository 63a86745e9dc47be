"""The saved parse state between restarts, kept outside the Claude data directory.

A restart over an unchanged history then reads nothing but directory
listings. The file is versioned and written atomically; a stale entry is
used only where its file still matches (see helm_monitor.claude.state), and
a corrupt file, or one from another version, is ignored and replaced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile

import orjson

from helm_monitor import __version__
from helm_monitor.claude import state
from helm_monitor.claude.catalog import Catalog

log = logging.getLogger(__name__)

MAX_CACHE_BYTES = 512 * 1024 * 1024


class StateCache:
    def __init__(self, cache_dir: str | os.PathLike, claude_root: str):
        cache_dir = os.path.realpath(os.fspath(cache_dir))
        root = os.path.realpath(claude_root)
        self.enabled = True
        if cache_dir == root or cache_dir.startswith(root + os.sep):
            log.warning("cache directory %s is inside the Claude data directory; not caching (it is never written)",
                        cache_dir)
            self.enabled = False
        digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.dir = cache_dir
        self.path = os.path.join(cache_dir, f"state-{digest}.json")

    def load_into(self, catalog: Catalog) -> int:
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
            restored = state.restore_state(catalog, doc.get("state"))
        except (ValueError, TypeError) as exc:
            log.warning("cache %s is unusable (%s); reading everything", self.path, exc)
            return 0
        log.info("restored parse state of %d transcripts from %s", restored, self.path)
        return restored

    def save(self, catalog: Catalog) -> bool:
        if not self.enabled:
            return False
        doc = {"helm": __version__, "state": state.export_state(catalog)}
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.dir)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(orjson.dumps(doc))
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("cannot write cache %s: %s", self.path, exc.strerror)
            return False
        return True
