"""static/vendor/: third-party files, pinned (scripts/vendor-js.sh writes them and VERSIONS).

Every file under static/vendor/ is named in VERSIONS with its SHA-256, and matches it; every
package there names its version, its licence and the integrity of the npm tarball it came
from; the licence text ships beside the code. Nothing here needs the network: the script's
``--check`` compares with the registry, this test with the pins.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "static"
VENDOR = STATIC / "vendor"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "vendor-js.sh"

PACKAGE_RE = re.compile(r"^(?P<name>[a-z0-9._-]+) (?P<version>\d+\.\d+\.\d+) (?P<licence>\S+) (?P<integrity>sha512-[A-Za-z0-9+/=]{88})$")
FILE_RE = re.compile(r"^  (?P<sha256>[0-9a-f]{64}) (?P<path>[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)$")


def read_versions() -> dict[str, dict]:
    packages: dict[str, dict] = {}
    current = None
    for line in (VENDOR / "VERSIONS").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if m := PACKAGE_RE.match(line):
            current = packages[m["name"]] = {**m.groupdict(), "files": {}}
        elif (m := FILE_RE.match(line)) and current is not None:
            current["files"][m["path"]] = m["sha256"]
        else:
            raise AssertionError(f"VERSIONS: cannot read {line!r}")
    return packages


def test_every_vendored_file_matches_its_pinned_sha256():
    packages = read_versions()
    pinned = {path: sha for p in packages.values() for path, sha in p["files"].items()}
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"VERSIONS"}
    assert on_disk == set(pinned), "files under static/vendor/ and in VERSIONS differ"
    for path, sha in pinned.items():
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == sha, path


def test_uplot_is_the_pinned_version_with_its_licence():
    uplot = read_versions()["uplot"]
    assert uplot["version"] == "1.6.32"
    assert uplot["licence"] == "MIT"
    assert set(uplot["files"]) == {"uplot/uPlot.iife.min.js", "uplot/uPlot.min.css", "uplot/LICENSE"}
    assert "MIT License" in (VENDOR / "uplot" / "LICENSE").read_text()
    code = (VENDOR / "uplot" / "uPlot.iife.min.js").read_text()
    assert code.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")  # the build's own banner


def test_the_script_pins_what_versions_records():
    """VERSIONS was written by the script as it stands: same packages, versions and integrity."""
    script = SCRIPT.read_text()
    for name, p in read_versions().items():
        assert f'"{name}|{p["version"]}|{p["integrity"]}|{p["licence"]}|' in script, name


def test_vendored_code_sets_no_style_attribute():
    """The page's CSP (style-src 'self') blocks style attributes written as markup; uPlot
    styles its elements through the CSSOM (el.style.x = ...), which the CSP allows."""
    for path in VENDOR.rglob("*.js"):
        code = path.read_text()
        assert not re.search(r"""setAttribute\(\s*["']style["']""", code), path
        assert "innerHTML" not in code and "insertAdjacentHTML" not in code, path
        assert "cssText" not in code, path
