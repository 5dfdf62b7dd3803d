"""The rig dashboard: the page at ``/`` (and ``/admin``), and its assets under ``/static/``.

The browser side is plain ES modules in ``static/`` (no bundler) plus one vendored charting
library (uPlot, MIT, ``static/vendor/uplot/`` with its licence; rebuilt from ``frontend/``). Nothing
is loaded from another origin, so the dashboard works on a rig site with no internet, and the
Content-Security-Policy can be strict: scripts, styles and connections from this origin only, no
inline script or style, no framing.

The page is public (it holds no data); everything it shows comes from the API with the user's
credential, so a viewer opening ``/admin`` sees an empty page and a refusal, never a user list.

Caching: the page itself is ``no-cache`` (revalidated each time, so an upgrade is seen at once).
The page names its assets with a content hash (``/static/app.js?v=1a2b3c4d5e6f``); a request that
carries the current hash may be cached for a year, anything else is ``no-cache`` with an ``ETag``,
so a stale copy can never outlive an upgrade. Every asset is read into memory (and gzipped) once per
process: the whole set is about 150 kB, and a file added to the directory later cannot be served by
accident. Only known file types are served, by exact name: no path is ever joined onto the disk.

Unit conversion happens in the browser with factors exported from :mod:`witskit.units` (pint) into
``static/units.json``: regenerate it with ``python -m witskit.service.dashboard units`` after changing
the unit tables (a test fails while it is stale).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from witskit.service.deps import public

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PAGES",
    "STATIC_PREFIX",
    "Asset",
    "dashboard_router",
    "install_dashboard",
    "load_assets",
    "main",
    "units_json",
    "units_table",
]

#: URL prefix of the assets.
STATIC_PREFIX: Final = "/static"
#: Paths that serve the single-page application (the script picks the view from the path).
PAGES: Final = ("/", "/admin")
#: Route names, so that :func:`install_dashboard` can tell whether the router is already there.
STATIC_ROUTE_NAME: Final = "witskit_dashboard_static"

#: Only this origin, nothing inline, no plugins, no framing (clickjacking), no <base> tricks.
#: ``connect-src 'self'`` covers the WebSocket of the same host and port (CSP Level 3).
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
#: The page and unversioned assets: the browser keeps them but asks each time (cheap 304s).
_REVALIDATE: Final = "no-cache"
#: An asset requested with its current content hash never changes under that URL.
_IMMUTABLE: Final = "public, max-age=31536000, immutable"

_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE, VERSION
}
#: Below this size gzip is not worth a header and a Vary.
_GZIP_MIN: Final = 1024
_INDEX: Final = "index.html"
#: ``{{static:path}}`` in index.html becomes the asset's versioned URL.
_PLACEHOLDER: Final = re.compile(r"\{\{static:([A-Za-z0-9_./-]+)\}\}")


@dataclass(frozen=True, slots=True)
class Asset:
    """One file served by the dashboard, ready to send."""

    path: str
    body: bytes
    gzipped: bytes | None
    media_type: str
    version: str

    @property
    def etag(self) -> str:
        """A strong validator: the content hash."""
        return f'"{self.version}"'

    @property
    def etag_gzip(self) -> str:
        """The gzipped representation's validator (a strong ETag names exact bytes)."""
        return f'"{self.version}-gz"'

    @classmethod
    def of(cls, path: str, body: bytes, media_type: str) -> Asset:
        """An asset with its hash and, when it pays, its gzipped body."""
        version = hashlib.sha256(body).hexdigest()[:16]
        gz = None
        if len(body) >= _GZIP_MIN and not media_type.startswith("image/png"):
            # mtime=0: the same bytes every start, so the body matches the ETag everywhere.
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gz = packed if len(packed) < len(body) else None
        return cls(path, body, gz, media_type, version)


def _walk(root: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, name + "/")
        elif entry.is_file():
            yield name, entry


def _static_root() -> Traversable:
    return resources.files("witskit.service").joinpath("static")


def load_assets(root: Traversable | None = None) -> tuple[dict[str, Asset], Asset]:
    """Every servable file under ``root`` (default: the package's ``static/``), and the page.

    Files of unknown types and dot files are left out. The page's ``{{static:...}}`` placeholders
    are replaced by versioned URLs; a placeholder naming a missing file is an error, so a broken
    page cannot ship.
    """
    root = root if root is not None else _static_root()
    assets: dict[str, Asset] = {}
    page: bytes | None = None
    for rel, entry in _walk(root):
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if rel == _INDEX:
            page = entry.read_bytes()
            continue
        suffix = Path(rel).suffix.lower()
        media = _MEDIA_TYPES.get(suffix)
        if media is None:
            continue
        assets[rel] = Asset.of(rel, entry.read_bytes(), media)
    if page is None:
        raise FileNotFoundError(f"the dashboard page {_INDEX} is missing from {root}")

    def versioned(match: re.Match[str]) -> str:
        name = match.group(1)
        asset = assets.get(name)
        if asset is None:
            raise FileNotFoundError(f"{_INDEX} names {name}, which is not in {root}")
        return f"{STATIC_PREFIX}/{name}?v={asset.version}"

    html = _PLACEHOLDER.sub(versioned, page.decode("utf-8")).encode("utf-8")
    return assets, Asset.of(_INDEX, html, _MEDIA_TYPES[".html"])


@functools.cache
def _package_assets() -> tuple[dict[str, Asset], Asset]:
    # Read (and gzipped) once per process: the installed files do not change while it runs, and
    # tests build many apps.
    return load_assets()


def _etag_matches(request: Request, asset: Asset) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    # Either representation's tag means the client holds this content.
    return "*" in tags or asset.etag in tags or asset.etag_gzip in tags


def _send(request: Request, asset: Asset, cache_control: str) -> Response:
    gzipped = asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower()
    headers = {
        **_SECURITY_HEADERS,
        "Cache-Control": cache_control,
        "ETag": asset.etag_gzip if gzipped else asset.etag,
    }
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _etag_matches(request, asset):
        return Response(status_code=304, headers=headers)
    if gzipped and asset.gzipped is not None:
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _not_found() -> Response:
    return Response(
        "not found", status_code=404, media_type="text/plain; charset=utf-8", headers=_SECURITY_HEADERS
    )


def dashboard_router() -> APIRouter:
    """The dashboard's routes: the page at ``/`` and ``/admin``, the assets under ``/static/``.

    All are public: the page and its scripts hold no data. Include it in the app *before* any other
    route for ``/`` (:func:`install_dashboard` does that for an app built already).
    """
    assets, page = _package_assets()
    router = APIRouter(tags=["dashboard"])

    async def dashboard_page(request: Request) -> Response:
        """The dashboard (a single page: it reads its view from the path)."""
        return _send(request, page, _REVALIDATE)

    for path in PAGES:
        router.add_api_route(
            path,
            dashboard_page,
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
            name=f"witskit_dashboard_page{path.replace('/', '_')}",
            **public(),
        )

    async def dashboard_static(request: Request, path: str) -> Response:
        """An asset; cached for a year when asked for by its current hash."""
        asset = assets.get(path)
        if asset is None:
            return _not_found()
        fresh = request.query_params.get("v") == asset.version
        return _send(request, asset, _IMMUTABLE if fresh else _REVALIDATE)

    router.add_api_route(
        f"{STATIC_PREFIX}/{{path:path}}",
        dashboard_static,
        methods=["GET"],
        response_class=Response,
        include_in_schema=False,
        name=STATIC_ROUTE_NAME,
        **public(),
    )
    return router


def install_dashboard(app: FastAPI) -> FastAPI:
    """Add the dashboard to an app built already, ahead of any placeholder at ``/``. Idempotent.

    Returns the app. When the app factory includes :func:`dashboard_router` itself this does
    nothing.
    """
    try:
        app.url_path_for(STATIC_ROUTE_NAME, path=_INDEX)
    except Exception:  # NoMatchFound: not there yet
        app.include_router(dashboard_router())
        # The router was appended; routes match in order, so move it in front of the placeholder.
        routes = app.router.routes
        routes.insert(0, routes.pop())
    return app


# Units, exported from pint at build time ---------------------------------------------------------
def units_table() -> dict[str, Any]:
    """What the browser needs to switch units, computed by :mod:`witskit.units` (pint).

    ``counterpart`` maps each dictionary unit to its unit in the other system (``"M"`` ->
    ``{"metric": "M", "fps": "F"}``); ``codes`` lists the items whose own pair differs from that
    default (``"0426"``: ``["KDN", "LB"]``); ``factors`` gives ``[scale, offset]`` for each pair in both
    directions (``value_to = value_from * scale + offset``; the offset is 0 except temperatures).
    """
    from witskit import units
    from witskit.symbols import default_table

    def factor(src: str, dst: str) -> list[float]:
        try:
            return [units.conversion_factor(src, dst), 0.0]
        except units.ConversionError:
            # An offset scale (temperatures): the scale over 100 units, the offset at zero.
            zero = units.convert(0.0, src, dst)
            return [(units.convert(100.0, src, dst) - zero) / 100.0, zero]

    counterpart: dict[str, dict[str, str]] = {}
    factors: dict[str, list[float]] = {}
    for unit in units.known_units():
        metric = units.counterpart(unit, True)
        fps = units.counterpart(unit, False)
        if metric == fps == unit:
            continue  # used by both systems (%, RPM, ----): nothing to convert
        counterpart[unit] = {"metric": metric, "fps": fps}
        for other in {metric, fps} - {unit}:
            factors[f"{unit}>{other}"] = factor(unit, other)
    codes: dict[str, list[str]] = {}
    table = default_table()
    for code in table:
        sym = table[code]
        metric, fps = sym.metric_units, sym.fps_units
        if metric == fps:
            continue
        default = counterpart.get(fps, {}).get("metric"), counterpart.get(metric, {}).get("fps")
        if default != (metric, fps):
            codes[code] = [metric, fps]
            factors.setdefault(f"{metric}>{fps}", factor(metric, fps))
            factors.setdefault(f"{fps}>{metric}", factor(fps, metric))
    return {
        "generated_by": "python -m witskit.service.dashboard units",
        "counterpart": dict(sorted(counterpart.items())),
        "codes": dict(sorted(codes.items())),
        "factors": dict(sorted(factors.items())),
    }


def units_json() -> str:
    """:func:`units_table` as the text committed in ``static/units.json``."""
    return json.dumps(units_table(), indent=1, sort_keys=False) + "\n"


def _static_dir() -> Path:
    return Path(__file__).resolve().parent / "static"


def main(argv: list[str] | None = None) -> int:
    """``python -m witskit.service.dashboard units [--check]``: write (or check) ``units.json``."""
    parser = argparse.ArgumentParser(prog="python -m witskit.service.dashboard", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("units", help="export the unit conversion factors for the browser")
    cmd.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    cmd.add_argument("--output", type=Path, default=_static_dir() / "units.json")
    args = parser.parse_args(argv)
    text = units_json()
    target: Path = args.output
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            sys.stderr.write(f"{target} is stale: run python -m witskit.service.dashboard units\n")
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    raise SystemExit(main())
