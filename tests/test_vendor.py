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


def test_markdown_it_is_the_pinned_version_with_its_licence():
    md = read_versions()["markdown-it"]
    assert md["version"] == "15.0.3"
    assert md["licence"] == "MIT"
    assert set(md["files"]) == {"markdown-it/markdown-it.umd.min.js", "markdown-it/LICENSE"}
    licence = (VENDOR / "markdown-it" / "LICENSE").read_text()
    assert "Copyright (c) 2014 Vitaly Puzrin, Alex Kocharin." in licence
    assert "Permission is hereby granted, free of charge" in licence  # the MIT text
    code = (VENDOR / "markdown-it" / "markdown-it.umd.min.js").read_text()
    # the build has no banner: its UMD wrapper, which as a classic script sets window.markdownit
    assert code.startswith("(function(e,t){typeof exports==`object`&&typeof module<`u`?module.exports=t():")
    assert "e=typeof globalThis<`u`?globalThis:e||self,e.markdownit=t()" in code[:300]


def test_dompurify_is_the_pinned_version_with_its_licence():
    """npm: "(MPL-2.0 OR Apache-2.0)"; taken under Apache-2.0, the text of its LICENSE."""
    purify = read_versions()["dompurify"]
    assert purify["version"] == "3.5.0"
    assert purify["licence"] == "Apache-2.0"
    assert set(purify["files"]) == {"dompurify/purify.min.js", "dompurify/LICENSE"}
    licence = (VENDOR / "dompurify" / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    code = (VENDOR / "dompurify" / "purify.min.js").read_text()
    assert code.startswith("/*! @license DOMPurify 3.5.0 | (c) Cure53 and other contributors | ")  # its banner
    assert "e=typeof globalThis<`u`?globalThis:e||self,e.DOMPurify=t()" in code[:600]  # UMD: window.DOMPurify


def test_highlight_js_is_the_pinned_version_with_its_licence():
    """npm package @highlightjs/cdn-assets: the build with the common languages, two themes."""
    hl = read_versions()["highlight"]
    assert hl["version"] == "11.12.0"
    assert hl["licence"] == "BSD-3-Clause"
    assert set(hl["files"]) == {
        "highlight/highlight.min.js",
        "highlight/github.min.css",
        "highlight/github-dark.min.css",
        "highlight/LICENSE",
    }
    licence = (VENDOR / "highlight" / "LICENSE").read_text()
    assert licence.startswith("BSD 3-Clause License") and "Ivan Sagalaev" in licence
    code = (VENDOR / "highlight" / "highlight.min.js").read_text()
    assert code.startswith("/*!\n  Highlight.js v11.12.0 (git: f7f7d3803b)\n")  # the build's own banner
    assert "License: BSD-3-Clause\n */\nvar hljs=function(){" in code[:300]  # a classic script's global
    assert 'registerLanguage(n,Pe[e])' in code and "grmr_python" in code  # the bundled languages
    for theme, title in (("github", "GitHub"), ("github-dark", "GitHub Dark")):
        css = (VENDOR / "highlight" / f"{theme}.min.css").read_text()
        assert css.startswith("pre code.hljs{display:block;"), theme
        assert f"Theme: {title}\n" in css, theme


def test_the_script_pins_what_versions_records():
    """VERSIONS was written by the script as it stands: same packages, versions and integrity."""
    script = SCRIPT.read_text()
    for name, p in read_versions().items():
        assert f'"{name}|{p["version"]}|{p["integrity"]}|{p["licence"]}|' in script, name


# Vendored code that writes markup (innerHTML), and why that markup has no style attribute.
WRITES_MARKUP = {
    # parses the HTML it is given into an inert document, and serialises what it keeps
    "dompurify/purify.min.js",
    # highlightElement(el) sets el.innerHTML to its own <span class="hljs-..."> markup
    "highlight/highlight.min.js",
}


def test_vendored_code_sets_no_style_attribute():
    """The page's CSP (style-src 'self') blocks style attributes written as markup; uPlot
    styles its elements through the CSSOM (el.style.x = ...), which the CSP allows. Only the
    files in WRITES_MARKUP write HTML at all, and none of them writes a style attribute."""
    for path in VENDOR.rglob("*.js"):
        code = path.read_text()
        name = path.relative_to(VENDOR).as_posix()
        assert not re.search(r"""setAttribute\(\s*["'`]style["'`]""", code), name
        assert "cssText" not in code, name
        assert "style=" not in code, name
        if name not in WRITES_MARKUP:
            assert "innerHTML" not in code and "insertAdjacentHTML" not in code, name


def test_vendored_code_needs_no_eval():
    """The page's CSP (script-src 'self', no 'unsafe-eval') refuses eval and new Function.
    ("eval" does occur in highlight.js, as a keyword of the languages it highlights.)"""
    for path in VENDOR.rglob("*.js"):
        code = path.read_text()
        name = path.relative_to(VENDOR).as_posix()
        assert not re.search(r"\bFunction\s*\(", code), name  # new Function(...) or Function(...)
        assert not re.search(r"(?<![\w$\"'`])eval\s*\)?\s*\(", code), name  # eval(, window.eval(, (0,eval)(
        assert not re.search(r"""set(Timeout|Interval)\(\s*["'`]""", code), name
