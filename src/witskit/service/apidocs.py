"""The API browser at ``/docs``: Swagger UI served from the package, under a strict CSP.

FastAPI's default page loads Swagger UI from a public CDN at a floating version, without
integrity, on the dashboard's origin, starts it with an inline script and keeps whatever is typed
into **Authorize** (a password, tokens, an API key) in ``localStorage`` (``persistAuthorization``).
This page instead loads the copy vendored in ``static/vendor/swagger-ui`` (pinned in
``frontend/package.json``, checked against ``SOURCE.txt``) and ``static/apidocs/init.js``, with
the dashboard's Content-Security-Policy (plus ``data:`` images, for Swagger UI's icons), and keeps
credentials in the page's memory only.

``WITS_API_DOCS=false`` turns off ``/docs`` and ``/openapi.json`` together (404): the schema is what
the page shows, and a deployment that hides one means to hide both. ReDoc is not served.
"""

from __future__ import annotations

import html
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from witskit.service.dashboard import (
    _SECURITY_HEADERS,
    CONTENT_SECURITY_POLICY,
    STATIC_PREFIX,
    _package_assets,
)
from witskit.service.deps import public

__all__ = ["DOCS_CONTENT_SECURITY_POLICY", "DOCS_URL", "OPENAPI_URL", "docs_router"]

DOCS_URL: Final = "/docs"
OPENAPI_URL: Final = "/openapi.json"
#: The dashboard's policy; Swagger UI's stylesheet draws its icons as ``data:`` SVG images.
DOCS_CONTENT_SECURITY_POLICY: Final = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self'", "img-src 'self' data:"
)
_ASSETS: Final = (
    "vendor/swagger-ui/swagger-ui.css",
    "vendor/swagger-ui/swagger-ui-bundle.js",
    "apidocs/init.js",
    "favicon.svg",
)


def _page() -> str:
    assets, _ = _package_assets()
    url = {name: f"{STATIC_PREFIX}/{name}?v={assets[name].version}" for name in _ASSETS}
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WitsKit API</title>
<link rel="icon" href="{html.escape(url["favicon.svg"])}">
<link rel="stylesheet" href="{html.escape(url["vendor/swagger-ui/swagger-ui.css"])}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="{html.escape(url["vendor/swagger-ui/swagger-ui-bundle.js"])}"></script>
<script src="{html.escape(url["apidocs/init.js"])}"></script>
</body>
</html>
"""


def docs_router() -> APIRouter:
    """``/docs``: the page (public: it holds no data; the schema it reads is ``/openapi.json``)."""
    page = _page().encode("utf-8")
    headers = {
        **_SECURITY_HEADERS,
        "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY,
        "Cache-Control": "no-cache",
    }
    router = APIRouter()

    async def api_docs(request: Request) -> Response:
        """The API browser."""
        return HTMLResponse(page, headers=headers)

    router.add_api_route(
        DOCS_URL,
        api_docs,
        methods=["GET"],
        response_class=HTMLResponse,
        include_in_schema=False,
        name="witskit_api_docs",
        **public(),
    )
    return router
