"""The page's assets under /assets/<digest>/ (helm_monitor/web/page.py), on a real server.

The ES modules import each other by relative URL, so they all live under one path that
names the digest of static/: the page names the current one, it is cached for a year,
and any other digest (a page loaded before an upgrade) is answered uncached.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "static"


def get(server, path):
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def page_assets(server) -> tuple[str, list[str]]:
    status, _, page = get(server, "/")
    assert status == 200
    urls = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.decode())
    assert urls, page[:1500]
    prefixes = {re.match(r"/assets/[^/]+", u).group(0) for u in urls}
    assert len(prefixes) == 1, prefixes
    return prefixes.pop(), urls


def test_the_page_names_every_asset_under_the_digest_of_static(server):
    prefix, urls = page_assets(server)
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
        digest.update(path.relative_to(STATIC).as_posix().encode() + b"\0" + path.read_bytes())
    assert prefix == f"/assets/{digest.hexdigest()[:12]}"
    assert f"{prefix}/app.js" in urls and f"{prefix}/style.css" in urls
    # The vendored libraries too, each served as it is on disk: the stylesheets the page names, and
    # the classic scripts markdown.js loads on first use (by URL relative to itself).
    vendored = [u for u in urls if u.startswith(f"{prefix}/vendor/")]
    loaded = re.findall(r"""new URL\('\./(vendor/[^']+)', import\.meta\.url\)""", (STATIC / "markdown.js").read_text())
    assert {u.rsplit("/", 1)[1] for u in loaded} == {"markdown-it.umd.min.js", "purify.min.js", "highlight.min.js"}
    assert not any(u.endswith(".js") for u in vendored)  # none of them holds up the page's load
    vendored += [f"{prefix}/{u}" for u in loaded]
    for url in vendored:
        status, headers, body = get(server, url)
        assert status == 200 and body == (STATIC / url[len(prefix) + 1:]).read_bytes(), url
        assert "max-age=31536000" in headers["cache-control"], url


def test_every_module_the_page_imports_is_served_and_cached_for_good(server):
    prefix, _ = page_assets(server)
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        status, headers, body = get(server, f"{prefix}/{name}")
        assert status == 200, name
        assert headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript"), name
        assert "max-age=31536000" in headers["cache-control"], (name, headers["cache-control"])
        assert headers["x-content-type-options"] == "nosniff"
        assert body == (STATIC / name).read_bytes()
        todo += re.findall(r"""from\s+['"]\./([\w-]+\.js)['"]""", body.decode())
    # Every module in static/ is reachable from the entry: none is dead, none missing.
    assert seen == {p.name for p in STATIC.glob("*.js")}


def test_an_old_digest_is_answered_but_not_cached(server):
    status, headers, body = get(server, "/assets/000000000000/app.js")
    assert status == 200 and body == (STATIC / "app.js").read_bytes()
    assert "max-age=0" in headers["cache-control"] or "no-cache" in headers["cache-control"]


@pytest.mark.parametrize("path", [
    "/assets/000000000000/no-such-module.js",
    "/assets/000000000000/..%2F..%2Fsetup.cfg",
    "/assets/000000000000/%2E%2E/%2E%2E/setup.cfg",
    "/assets/not-a-digest!/app.js",
])
def test_nothing_outside_static_is_served(server, path):
    status, _, body = get(server, path)
    assert status == 404, path
    assert b"[metadata]" not in body
