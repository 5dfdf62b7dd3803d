"""The dashboard's HTTP side, without a browser: headers, caching, the asset set, the unit table.

These run everywhere (no Chromium needed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from witskit import units
from witskit.service import dashboard
from witskit.service.dashboard import (
    CONTENT_SECURITY_POLICY,
    dashboard_router,
    install_dashboard,
    load_assets,
    units_table,
)
from witskit.service.deps import PERMISSION_FIELD, PUBLIC

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "witskit" / "service" / "static"


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://witskit.test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(dashboard_router())
    async with asgi_client(app) as c:
        yield c


class _Page(HTMLParser):
    """Collects what a CSP-strict page must not have, and the URLs it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if name == "style":
                self.inline_styles += 1
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(value)
            if name.startswith("data-") and value and value.startswith("/static/"):
                self.urls.append(value)
        if tag == "style":
            self.inline_styles += 1
        if tag == "script":
            self._in_script = True
            if "src" not in values:
                self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


async def test_the_page_is_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    for path in ("/", "/admin"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


async def test_the_page_has_nothing_inline_and_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    page = _Page()
    html = (await client.get("/")).text
    page.feed(html)
    assert page.inline_scripts == 0
    assert page.inline_styles == 0
    assert page.handlers == []
    assert "{{" not in html, "every asset placeholder is replaced"
    assert page.urls, "the page loads its assets"
    for url in page.urls:
        assert url.startswith("/"), f"{url} is not from this origin"
        assert not url.startswith("//")


async def test_every_asset_the_page_names_is_served_versioned_and_immutable(
    client: httpx.AsyncClient,
) -> None:
    page = _Page()
    page.feed((await client.get("/")).text)
    assets = [u for u in page.urls if u.startswith("/static/")]
    assert {"/static/js/app.js", "/static/dashboard.css", "/static/vendor/uplot/uPlot.iife.min.js"} <= {
        u.split("?")[0] for u in assets
    }
    for url in assets:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        version = url.split("?v=")[1]
        assert response.headers["etag"] in (f'"{version}"', f'"{version}-gz"')
        assert version == hashlib.sha256(response.content).hexdigest()[:16]
    types = {
        "/static/js/app.js": "text/javascript; charset=utf-8",
        "/static/dashboard.css": "text/css; charset=utf-8",
        "/static/units.json": "application/json",
        "/static/favicon.svg": "image/svg+xml",
        "/static/vendor/uplot/LICENSE": "text/plain; charset=utf-8",
    }
    for path, media in types.items():
        assert (await client.get(path)).headers["content-type"] == media, path


async def test_unversioned_or_stale_urls_are_revalidated(client: httpx.AsyncClient) -> None:
    plain = await client.get("/static/js/api.js")
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "no-cache"
    stale = await client.get("/static/js/api.js?v=0000000000000000")
    assert stale.headers["cache-control"] == "no-cache"
    again = await client.get("/static/js/api.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    page = await client.get("/")
    assert (await client.get("/", headers={"If-None-Match": page.headers["etag"]})).status_code == 304
    assert (await client.get("/", headers={"If-None-Match": '"other"'})).status_code == 200


async def test_large_assets_are_sent_gzipped_to_clients_that_accept_it(client: httpx.AsyncClient) -> None:
    async with client.stream(
        "GET", "/static/vendor/uplot/uPlot.iife.min.js", headers={"Accept-Encoding": "gzip"}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        etag = response.headers["etag"]
    body = (STATIC / "vendor" / "uplot" / "uPlot.iife.min.js").read_bytes()
    assert gzip.decompress(raw) == body
    assert len(raw) < len(body) / 2
    identity = await client.get(
        "/static/vendor/uplot/uPlot.iife.min.js", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in identity.headers
    assert identity.content == body
    assert etag == identity.headers["etag"][:-1] + '-gz"', "each representation has its own strong tag"
    again = await client.get(
        "/static/vendor/uplot/uPlot.iife.min.js",
        headers={"Accept-Encoding": "identity", "If-None-Match": etag},
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/index.html",
        "/static/%2e%2e/dashboard.py",
        "/static/..%2fdashboard.py",
        "/static/js/../../dashboard.py",
        "/static/",
        "/static/vendor",
    ],
)
async def test_nothing_outside_the_asset_set_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.content  # never a source file


async def test_module_imports_resolve_to_served_files(client: httpx.AsyncClient) -> None:
    for script in sorted((STATIC / "js").glob("*.js")):
        for target in re.findall(r'^import .* from "(\./[^"]+)";$', script.read_text(), flags=re.M):
            response = await client.get(f"/static/js/{target[2:]}")
            assert response.status_code == 200, (script.name, target)


def test_the_pages_are_public_routes_outside_the_schema() -> None:
    router = dashboard_router()
    routes: list[Any] = list(router.routes)
    assert {r.path for r in routes} == {"/", "/admin", "/static/{path:path}"}
    for route in routes:
        assert route.openapi_extra[PERMISSION_FIELD] == PUBLIC
        assert route.include_in_schema is False
        assert route.methods == {"GET"}


async def test_install_puts_the_dashboard_ahead_of_the_placeholder_once() -> None:
    from witskit.config import WitsConfig
    from witskit.service.app import create_app

    app = create_app(SimpleNamespace(config=WitsConfig(_env_file=None, metrics_enabled=False)))  # type: ignore[arg-type, call-arg]
    install_dashboard(app)
    count = len(app.router.routes)
    install_dashboard(app)
    assert len(app.router.routes) == count
    async with asgi_client(app) as client:
        page = await client.get("/")
        assert 'id="login-view"' in page.text
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert (await client.get("/livez")).json() == {"status": "alive"}


def test_a_page_naming_a_missing_asset_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="{{static:js/missing.js}}"></script>')
    with pytest.raises(FileNotFoundError, match=r"missing\.js"):
        load_assets(tmp_path)


def test_the_committed_unit_table_is_what_pint_computes_now() -> None:
    assert dashboard.main(["units", "--check"]) == 0, "run: python -m witskit.service.dashboard units"
    table = json.loads((STATIC / "units.json").read_text())
    assert table == units_table()
    assert table["factors"]["M>F"][0] == pytest.approx(units.convert(1.0, "M", "F"))
    scale, offset = table["factors"]["DEGC>DEGF"]
    assert 100 * scale + offset == pytest.approx(units.convert(100.0, "DEGC", "DEGF"))
    assert table["counterpart"]["KLB"] == {"metric": "KDN", "fps": "KLB"}
    assert table["codes"]["0426"] == ["KDN", "LB"]  # an item whose own pair is not the default


def test_the_unit_table_can_be_written_and_checked(tmp_path: Path) -> None:
    target = tmp_path / "units.json"
    assert dashboard.main(["units", "--check", "--output", str(target)]) == 1
    assert dashboard.main(["units", "--output", str(target)]) == 0
    assert dashboard.main(["units", "--check", "--output", str(target)]) == 0


def test_the_vendored_library_is_the_locked_release_with_its_licence() -> None:
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/uplot"]
    vendor = STATIC / "vendor" / "uplot"
    source = (vendor / "SOURCE.txt").read_text().splitlines()
    assert source[0].startswith(f"uplot {locked['version']} (MIT)")
    assert source[1] == f"integrity {locked['integrity']}"
    for line in source[4:]:
        digest, name = line.split("  ")
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (vendor / "LICENSE").read_text()
    package = json.loads((ROOT / "frontend" / "package.json").read_text())
    assert package["dependencies"]["uplot"] == locked["version"], "pinned exactly"
