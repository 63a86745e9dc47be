"""What a worker's start costs: gevent's patching reads the installed distributions' entry points once.

gevent's ``patch_all()`` asks for its plugins' entry points once per module it patches, and each
ask reads the metadata of every installed distribution. ``post_fork`` has them read once until the
worker has patched (helm_monitor/server/runtime.py); the answers are the same, and afterwards
``importlib.metadata.entry_points`` is the library's own again.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PATCH = r"""
import json, sys
from importlib import metadata
reads = []
real_distributions = metadata.distributions
def counted(**kw):
    reads.append(1)
    return real_distributions(**kw)
metadata.distributions = counted
original = metadata.entry_points
from helm_monitor.server import runtime
if sys.argv[1] == "once":
    runtime.read_entry_points_once()
groups = ["gevent.plugins.monkey.will_patch_all", "gevent.plugins.monkey.did_patch_all", "console_scripts"]
before = {g: sorted(str(e) for e in original(group=g)) for g in groups}
reads.clear()
from gevent import monkey
monkey.patch_all()
during = len(reads)
answers = {g: sorted(str(e) for e in metadata.entry_points(group=g)) for g in groups}
runtime.read_entry_points_again()
print(json.dumps({"reads": during, "same": answers == before, "restored": metadata.entry_points is original,
                  "patched": monkey.is_module_patched("threading"), "console_scripts": len(before["console_scripts"])}))
"""


def _patch(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PATCH, mode], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_patching_reads_the_entry_points_once_and_answers_the_same():
    plain, once = _patch("plain"), _patch("once")
    assert plain["patched"] and once["patched"]
    assert plain["reads"] >= 10  # one reading of every distribution per patched module
    assert once["reads"] == 1
    assert once["same"] and plain["same"] and once["console_scripts"] > 0
    assert once["restored"]
