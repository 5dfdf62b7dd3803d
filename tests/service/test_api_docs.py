"""``/docs``: Swagger UI from the package, under a strict CSP, keeping no credential; and a switch.

FastAPI's default page loaded Swagger UI from a public CDN at a floating version, started it with
an inline script, and stored what was typed into **Authorize** in ``localStorage``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from service_helpers import Running, make_config, running_service

from witskit.service.apidocs import DOCS_CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "witskit" / "service" / "static"


async def test_the_docs_page_loads_only_from_this_origin_under_the_csp(svc: Running) -> None:
    page = await svc.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in DOCS_CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in DOCS_CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", page.text), "an external URL in the docs page"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert scripts
    assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts), "inline script"
    linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(linked) == 4
    for url in linked:
        asset = await svc.client.get(url)
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"]
        assert not re.search(r"sourceMappingURL", asset.text), url
    init = (await svc.client.get(next(u for u in linked if "init.js" in u))).text
    assert "persistAuthorization: false" in init
    assert "validatorUrl: null" in init
    schema = await svc.client.get("/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "WitsKit"


async def test_the_docs_and_the_schema_can_be_turned_off(tmp_path: Path) -> None:
    async with running_service(make_config(tmp_path, api_docs=False), ingest=False, users=False) as svc:
        for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
            assert (await svc.client.get(path)).status_code == 404, path
        assert (await svc.client.get("/livez")).status_code == 200


def test_the_vendored_swagger_ui_is_the_locked_release_with_its_licence() -> None:
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/swagger-ui-dist"]
    vendor = STATIC / "vendor" / "swagger-ui"
    source = (vendor / "SOURCE.txt").read_text().splitlines()
    assert source[0].startswith(f"swagger-ui-dist {locked['version']} (Apache-2.0)")
    assert source[1] == f"integrity {locked['integrity']}"
    names = set()
    for line in source[4:]:
        digest, name = line.split("  ")
        names.add(name)
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert names == {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"}
    assert "Apache License" in (vendor / "LICENSE").read_text()
    package = json.loads((ROOT / "frontend" / "package.json").read_text())
    assert package["dependencies"]["swagger-ui-dist"] == locked["version"], "pinned exactly"
