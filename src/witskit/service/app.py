"""The FastAPI application: routes, request ids and access logs, and the error mapping.

:func:`create_app` builds the app around an :class:`~witskit.service.deps.AppContext` (what the
routes use of the running process, which :class:`~witskit.service.runtime.Service` builds). The
unauthenticated side ports are :mod:`witskit.service.side_app`'s. OpenAPI is at ``/openapi.json``
and its browser at ``/docs`` (:mod:`witskit.service.apidocs`; both off with ``WITS_API_DOCS=false``).

Errors map to statuses by whose fault they are: the caller's (:class:`~witskit.errors.UsageError`)
422, a missing thing 404, a conflict 409, a database that is down 503 (``Retry-After``), any other
database error or bug 500 with the request id (the details go to the log, redacted, never to the
client).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from witskit._version import __version__
from witskit.errors import UsageError
from witskit.security.auth import AuthError
from witskit.security.logging import redact_text, redact_validation_errors
from witskit.service.accounts import AccountExists, AccountNotFound
from witskit.service.connections import ConnectionNotFound
from witskit.service.deps import API_PREFIX, AppContext
from witskit.service.identity import LastAdminError
from witskit.service.limits import BodyLimitMiddleware
from witskit.storage.errors import StorageError

__all__ = ["RequestContextMiddleware", "create_app"]

log = logging.getLogger("witskit.service")
access_log = structlog.get_logger("witskit.access")

_REQUEST_ID: Final = re.compile(r"\A[A-Za-z0-9._\-]{1,64}\Z")  # \Z: no trailing newline either
#: Answers that may hold tokens, keys or data: ``Cache-Control: no-store``, so that no browser cache,
#: proxy or shared disk keeps a copy (every status, errors included).
_PRIVATE_PREFIXES: Final = (f"{API_PREFIX}/", "/metrics", "/readyz")
#: Probes and scrapes are logged at DEBUG: every few seconds, forever, they would drown the rest.
_QUIET: Final = frozenset({"/livez", "/readyz", "/metrics"})

_DESCRIPTION: Final = """
WITS Level 0 drilling data: sources, latest values, time-range exports, the WITS dictionary,
live frames over a WebSocket (`/api/v1/live`), alarms, ingest connections and accounts.

Authenticate with `POST /api/v1/auth/token` (OAuth2 password flow) and send
`Authorization: Bearer <access token>`, or send an API key as `Authorization: Bearer wk_...` or
`X-API-Key: wk_...`. Each route states the permission it needs (`x-permission`): 401 means no valid
credential, 403 a credential whose roles lack the permission.
"""


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID``, taken from the client when well-formed), binds it
    to the logs, logs one access line, turns an unhandled error into a 500 with the id, and marks
    every answer of the API (``/api/``, ``/metrics``, ``/readyz``) ``Cache-Control: no-store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = ""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        private = scope.get("path", "").startswith(_PRIVATE_PREFIXES)
        started = False
        status = 0
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message.setdefault("headers", [])
                headers = [*message["headers"], (b"x-request-id", request_id.encode())]
                if private:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error in %s %s", scope.get("method", "WEBSOCKET"), scope.get("path"))
                if scope["type"] == "http" and not started:
                    response = JSONResponse(
                        {"detail": "internal error", "request_id": request_id}, status_code=500
                    )
                    await response(scope, receive, send_with_id)
            finally:
                path = scope.get("path", "")
                principal = scope.get("state", {}).get("principal")
                access_log.log(
                    logging.DEBUG if path in _QUIET else logging.INFO,
                    "request",
                    method=scope.get("method", "WEBSOCKET"),
                    path=path,
                    status=status or None,
                    duration_ms=round((time.perf_counter() - t0) * 1000, 2),
                    client=scope["client"][0] if scope.get("client") else None,
                    principal=getattr(principal, "name", None),
                )


def _detail(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def usage(request: Request, exc: Exception) -> JSONResponse:
        # A caller's mistake may quote what it sent (a URL with ?key_password=...): masked.
        message = redact_text(str(exc))
        if isinstance(exc, AccountNotFound | ConnectionNotFound):
            return _detail(404, message)
        if isinstance(exc, AccountExists | LastAdminError):
            return _detail(409, message)
        return _detail(422, message)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own 422 echoes each bad field's ``input``: a too-short password included.
        assert isinstance(exc, RequestValidationError)
        errors = redact_validation_errors(exc.errors())
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    async def storage(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StorageError)
        # StorageError messages carry the sanitized URL only; the client gets none of it.
        log.error("database error in %s %s: %s", request.method, request.url.path, exc)
        if exc.transient:
            return _detail(503, "the database is unavailable; try again shortly", {"Retry-After": "5"})
        return _detail(500, "database error")

    async def auth(request: Request, exc: Exception) -> JSONResponse:
        return _detail(401, "invalid or expired credentials", {"WWW-Authenticate": "Bearer"})

    app.add_exception_handler(UsageError, usage)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StorageError, storage)
    app.add_exception_handler(AuthError, auth)


def create_app(context: AppContext) -> FastAPI:
    """The API application over ``context`` (only its settings are read here; the routes use the rest)."""
    from witskit.service import websocket
    from witskit.service.apidocs import OPENAPI_URL, docs_router
    from witskit.service.routes import alarms, analytics, auth, connections, data, exports, fleet, ops, users

    docs = bool(context.config.api_docs)
    app = FastAPI(
        title="WitsKit",
        version=__version__,
        description=_DESCRIPTION,
        docs_url=None,  # FastAPI's page uses a CDN and an inline script: ours is served below
        redoc_url=None,
        openapi_url=OPENAPI_URL if docs else None,
    )
    app.state.witskit = context  # what deps.get_context hands the routes
    # Added first, so it runs inside the request context (the 413 has a request id and a log line).
    app.add_middleware(BodyLimitMiddleware, max_bytes=context.config.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    _install_error_handlers(app)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(data.router, prefix=API_PREFIX)
    app.include_router(analytics.router, prefix=API_PREFIX)
    app.include_router(exports.router, prefix=API_PREFIX)
    app.include_router(connections.router, prefix=API_PREFIX)
    app.include_router(users.router, prefix=API_PREFIX)
    app.include_router(alarms.router, prefix=API_PREFIX)
    app.include_router(fleet.router, prefix=API_PREFIX)
    app.include_router(websocket.router, prefix=API_PREFIX)
    app.include_router(ops.health_router)
    if docs:
        app.include_router(docs_router())
    if context.config.metrics_enabled:
        app.include_router(ops.metrics_router)
    from witskit.service.dashboard import dashboard_router

    app.include_router(dashboard_router())  # the live dashboard at / (and /admin, /static)
    return app
