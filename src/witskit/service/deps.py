"""FastAPI dependencies: the service, the caller, and the permission every route declares.

Every route is declared with :func:`guard` (a permission), :func:`authenticated` (any valid
credential) or :func:`public`; each puts its requirement in the route's OpenAPI ``x-permission``
field, which the tests read to check that no route escapes. The order of refusals is fixed: no
credential or a bad one is **401** (with ``WWW-Authenticate: Bearer``); a valid credential whose
roles lack the permission is **403**.

Credentials: ``Authorization: Bearer <JWT access token>``, ``Authorization: Bearer wk_...`` (an
API key) or ``X-API-Key: wk_...``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from witskit.security.auth import AuthError
from witskit.security.rbac import Permission, current_roles
from witskit.service.identity import Principal

if TYPE_CHECKING:
    from witskit.service.runtime import Service

__all__ = [
    "API_PREFIX",
    "AUTHENTICATED",
    "PERMISSION_FIELD",
    "PUBLIC",
    "TOKEN_URL",
    "CurrentPrincipal",
    "authenticated",
    "client_address",
    "get_principal",
    "get_service",
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


def get_service(request: Request) -> Service:
    """The :class:`~witskit.service.runtime.Service` behind the app."""
    service: Service = request.app.state.witskit
    return service


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


async def principal_for(service: Service, credential: str | None, client: str | None) -> Principal:
    """The principal of a credential, or a 401 :class:`HTTPException`."""
    if not credential:
        raise unauthorized()
    try:
        return await service.identity.authenticate(credential, client)
    except AuthError:
        # The reason is in the audit log; the client learns only that it was refused.
        raise unauthorized("invalid or expired credentials") from None


async def get_principal(
    request: Request,
    bearer: Annotated[str | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The authenticated caller, or 401."""
    principal = await principal_for(
        get_service(request), credential_from(bearer, api_key), client_address(request)
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[..., AsyncIterator[Principal]]:
    """A dependency: the caller if their roles grant ``permission``, else 403 (401 without one).

    The roles are also set as :func:`witskit.security.rbac.current_roles` for the request, so
    functions decorated with :func:`~witskit.security.rbac.require_permission` work inside it.
    """

    async def dependency(request: Request, principal: CurrentPrincipal) -> AsyncIterator[Principal]:
        if not principal.can(permission):
            service = get_service(request)
            service.audit.record(
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
