"""FastAPI dependencies: the app's context, the caller, and the permission every route declares.

The routes, the live WebSocket and the probes reach the running process only through
:class:`AppContext`: what they use (identity, accounts, audit, store, connections, latest values,
health, settings, live subscriptions, alarms), not the whole :class:`~witskit.service.runtime.Service`.
:func:`~witskit.service.app.create_app` keeps it in the app's state; a route gets it with a
:data:`Context` parameter (:func:`get_context`).

Every route is declared with :func:`guard` (a permission), :func:`authenticated` (any valid
credential) or :func:`public`; each puts its requirement in the route's OpenAPI ``x-permission``
field, which the tests read to check that no route escapes. The order of refusals is fixed: no
credential or a bad one is **401** (with ``WWW-Authenticate: Bearer``); a valid credential whose
roles lack the permission is **403**.

Credentials: ``Authorization: Bearer <JWT access token>``, ``Authorization: Bearer wk_...`` (an
API key) or ``X-API-Key: wk_...``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Final, Protocol

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from witskit.config import WitsConfig
from witskit.monitoring.health import HealthMonitor
from witskit.pipeline import Subscription
from witskit.security.auth import AuthError
from witskit.security.rbac import Permission, current_roles
from witskit.service.accounts import AccountStore
from witskit.service.alarms import AlarmDesk
from witskit.service.analytics import LiveAnalytics
from witskit.service.audit import AuditLog
from witskit.service.connections import Connection
from witskit.service.identity import Identity, Principal
from witskit.service.latest import LatestCache
from witskit.storage.fleet_status import FleetStatus
from witskit.storage.store import Store

__all__ = [
    "API_PREFIX",
    "AUTHENTICATED",
    "PERMISSION_FIELD",
    "PUBLIC",
    "TOKEN_URL",
    "AppContext",
    "ConnectionControl",
    "Context",
    "CurrentPrincipal",
    "authenticated",
    "client_address",
    "get_context",
    "get_principal",
    "guard",
    "public",
    "require",
]

API_PREFIX: Final = "/api/v1"
TOKEN_URL: Final = f"{API_PREFIX}/auth/token"
#: The OpenAPI field that states a route's requirement.
PERMISSION_FIELD: Final = "x-permission"
PUBLIC: Final = "public"
AUTHENTICATED: Final = "authenticated"

_bearer = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL, auto_error=False, description="JWT access token or API key"
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (wk_...)")

_UNAUTHORIZED_HEADERS: Final = {"WWW-Authenticate": "Bearer"}


class ConnectionControl(Protocol):
    """The ingest connections, as the routes see them: listed, added, started, stopped, removed.

    A change made here lasts: what is added through the API is kept in the database.
    """

    def __iter__(self) -> Iterator[Connection]: ...

    def get(self, name: str) -> Connection:
        """The connection by that name (:class:`~witskit.service.connections.ConnectionNotFound`)."""
        ...

    async def add(
        self, url: str, *, name: str | None = None, start: bool = True, actor: str | None = None
    ) -> Connection:
        """Add a source (checked, kept), started unless ``start`` is false."""
        ...

    async def start(self, name: str) -> Connection:
        """Start a connection (no-op when it runs)."""
        ...

    async def stop(self, name: str) -> Connection:
        """Stop a connection (no-op when stopped)."""
        ...

    async def remove(self, name: str) -> None:
        """Stop and forget a connection."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AppContext:
    """What the routes, the live WebSocket and the probes use of the running process; no more."""

    config: WitsConfig
    identity: Identity
    accounts: AccountStore
    audit: AuditLog
    store: Store
    #: The newest value of each code per source.
    latest: LatestCache
    health: HealthMonitor
    #: None when the process does not ingest (``witskit serve``).
    connections: ConnectionControl | None
    #: True when the pipeline decodes to metric units (exports name the units they hold).
    metric_units: bool
    #: The Prometheus exposition text, gauges refreshed.
    render_metrics: Callable[[], bytes]
    #: A live subscription to one source's frames (every source's when None).
    subscribe: Callable[[str | None], Awaitable[Subscription]]
    #: The alarms: active, history, acknowledgements, rules and webhooks (None: not built).
    alarms: AlarmDesk | None = None
    #: The rigs' live states and the settings stored ranges are classified with (None: the
    #: analytics routes classify with default settings and show no current state).
    analytics: LiveAnalytics | None = None
    #: A fleet's rigs as its central workers last committed them (``fleet_rigs``; None: not built).
    fleet: FleetStatus | None = None


def get_context(connection: HTTPConnection) -> AppContext:
    """The :class:`AppContext` of the app serving the request (or the WebSocket)."""
    context: AppContext = connection.app.state.witskit
    return context


#: A route parameter that receives the :class:`AppContext`.
Context = Annotated[AppContext, Depends(get_context)]


def client_address(request: Request) -> str | None:
    """The client's address (uvicorn applies trusted proxy headers to it)."""
    return request.client.host if request.client is not None else None


def unauthorized(detail: str = "not authenticated") -> HTTPException:
    """A 401 with the ``WWW-Authenticate`` challenge."""
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_UNAUTHORIZED_HEADERS)


def credential_from(authorization: str | None, api_key: str | None) -> str | None:
    """The credential in the headers: the ``X-API-Key`` value, else the bearer token."""
    if api_key:
        return api_key.strip()
    if authorization:
        return authorization.strip() or None
    return None


async def principal_for(identity: Identity, credential: str | None, client: str | None) -> Principal:
    """The principal of a credential, or a 401 :class:`HTTPException`."""
    if not credential:
        raise unauthorized()
    try:
        return await identity.authenticate(credential, client)
    except AuthError:
        # The reason is in the audit log; the client learns only that it was refused.
        raise unauthorized("invalid or expired credentials") from None


async def get_principal(
    request: Request,
    context: Context,
    bearer: Annotated[str | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The authenticated caller, or 401."""
    principal = await principal_for(
        context.identity, credential_from(bearer, api_key), client_address(request)
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[..., AsyncIterator[Principal]]:
    """A dependency: the caller if their roles grant ``permission``, else 403 (401 without one).

    The roles are also set as :func:`witskit.security.rbac.current_roles` for the request, so
    functions decorated with :func:`~witskit.security.rbac.require_permission` work inside it.
    """

    async def dependency(
        request: Request, context: Context, principal: CurrentPrincipal
    ) -> AsyncIterator[Principal]:
        if not principal.can(permission):
            context.audit.record(
                "access",
                outcome="denied",
                actor=principal.name,
                target=f"{request.method} {request.url.path}",
                client=client_address(request),
                permission=permission.value,
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"permission {permission.value} required")
        with current_roles(principal.roles):
            yield principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller's roles lack the permission"},
}


def _responses(
    base: dict[int | str, dict[str, Any]], extra: dict[int | str, dict[str, Any]] | None
) -> dict[int | str, dict[str, Any]]:
    return {**base, **(extra or {})}


def guard(permission: Permission, responses: dict[int | str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Route keyword arguments: requires ``permission`` (``responses`` adds documented statuses)."""
    return {
        "dependencies": [Depends(require(permission))],
        "openapi_extra": {PERMISSION_FIELD: permission.value},
        "responses": _responses(_ERRORS, responses),
    }


def authenticated(responses: dict[int | str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Route keyword arguments: any valid credential."""
    return {
        "dependencies": [Depends(get_principal)],
        "openapi_extra": {PERMISSION_FIELD: AUTHENTICATED},
        "responses": _responses({401: _ERRORS[401]}, responses),
    }


def public(responses: dict[int | str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Route keyword arguments: no credential needed (login, health, the placeholder page)."""
    return {"openapi_extra": {PERMISSION_FIELD: PUBLIC}, "responses": _responses({}, responses)}
