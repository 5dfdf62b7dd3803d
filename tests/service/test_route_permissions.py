"""Every route declares what it needs, and is refused without it: 401 without a valid credential,
403 with one whose roles lack the permission.

The routes are enumerated from the app itself, so a route added later without a declaration, or
with one it does not enforce, fails here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fastapi.routing import APIRoute, APIWebSocketRoute
from service_helpers import ROLE_USERS, Running, make_config, running_service, static_app
from starlette.routing import Route

from witskit.security.rbac import Permission, permissions_for
from witskit.service.deps import AUTHENTICATED, PERMISSION_FIELD, PUBLIC
from witskit.service.websocket import PERMISSION_ATTRIBUTE

# One service for the whole module (the requests below change nothing another test reads), in
# one event loop for the module.
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running_service(make_config(tmp_path_factory.mktemp("perm")), ingest=False) as running:
        yield running


#: Routes that need no credential, and why.
PUBLIC_ROUTES = {
    ("POST", "/api/v1/auth/token"),  # the login itself
    ("POST", "/api/v1/auth/refresh"),  # carries its own (refresh) token
    ("POST", "/api/v1/auth/logout"),  # carries its own (refresh) token, as refresh does
    ("GET", "/livez"),  # orchestrator probes
    ("GET", "/readyz"),
    ("GET", "/docs"),  # the API browser's page (witskit.service.apidocs): no data; not in the schema
}
#: FastAPI's own documentation routes (plain Starlette routes, not API routes).
DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}

APP = static_app()


def effective_routes(app: Any) -> list[tuple[Any, Any]]:
    """``(original route, effective route)`` of every route, included routers expanded.

    FastAPI >= 0.150 keeps included routers lazily (``iter_route_contexts`` expands them, with
    the prefixes applied); older versions copy every route into ``app.routes``.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [(r, r) for r in app.routes]
    return [(c.original_route, c) for c in iter_route_contexts(app.routes)]


ROUTES = effective_routes(APP)
API_ROUTES: list[tuple[str, str, str]] = sorted(
    (method, str(route.path_format), str((route.openapi_extra or {}).get(PERMISSION_FIELD, "")))
    for original, route in ROUTES
    if isinstance(original, APIRoute)
    for method in route.methods
)
GUARDED = [r for r in API_ROUTES if r[2] != PUBLIC]
each_guarded_route = pytest.mark.parametrize(
    ("method", "path", "need"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED]
)


def concrete(path: str) -> str:
    """The path with every parameter filled with something that does not exist."""
    return re.sub(r"\{[^}]+\}", "nosuch", path)


def test_every_route_declares_its_requirement() -> None:
    undeclared = []
    for original, route in ROUTES:
        if isinstance(original, APIRoute):
            declared = (route.openapi_extra or {}).get(PERMISSION_FIELD)
            valid = {PUBLIC, AUTHENTICATED} | {p.value for p in Permission}
            if declared not in valid:
                undeclared.append(route.path)
        elif isinstance(original, APIWebSocketRoute):
            if getattr(route.endpoint, PERMISSION_ATTRIBUTE, None) not in {p.value for p in Permission}:
                undeclared.append(route.path)
        elif isinstance(original, Route):
            if route.path not in DOC_ROUTES:
                undeclared.append(route.path)
        else:
            undeclared.append(repr(original))
    assert undeclared == []
    assert len(API_ROUTES) >= 25


def dashboard_pages() -> set[tuple[str, str]]:
    """The dashboard's public pages, when the app includes the dashboard (a separate module)."""
    try:
        from witskit.service.dashboard import dashboard_router  # type: ignore[attr-defined]
    except ImportError:
        return set()
    return {(m, r.path_format) for r in dashboard_router().routes for m in r.methods}


def test_public_routes_are_exactly_the_expected_ones() -> None:
    public = {(m, p) for m, p, need in API_ROUTES if need == PUBLIC}
    assert public - dashboard_pages() == PUBLIC_ROUTES - dashboard_pages()


def test_the_openapi_schema_states_each_permission() -> None:
    schema = APP.openapi()
    # Public HTML and static files, outside the API schema.
    pages = dashboard_pages() | {("GET", "/docs")}
    for method, path, need in API_ROUTES:
        if (method, path) in pages:
            continue
        assert schema["paths"][path][method.lower()][PERMISSION_FIELD] == need


@in_module_loop
@each_guarded_route
async def test_route_is_refused_without_a_valid_credential(
    shared: Running, method: str, path: str, need: str
) -> None:
    url = concrete(path)
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"X-API-Key": "wk_not-a-real-key-0000000000000000"},
    ):
        response = await shared.client.request(method, url, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


@in_module_loop
@each_guarded_route
async def test_route_is_refused_to_roles_without_its_permission(
    shared: Running, method: str, path: str, need: str
) -> None:
    url = concrete(path)
    refused: list[str] = []
    for who, roles in ROLE_USERS.items():
        allowed = need == AUTHENTICATED or Permission(need) in permissions_for(roles)
        response = await shared.client.request(method, url, headers=shared.auth(who))
        if allowed:
            assert response.status_code not in (401, 403), (who, response.text)
        else:
            refused.append(who)
            assert response.status_code == 403, (who, response.text)
            assert need in response.json()["detail"]
    if need != AUTHENTICATED:
        assert refused, f"every role may {need}: the test proves nothing for {path}"


@in_module_loop
async def test_a_refusal_is_audited(shared: Running) -> None:
    response = await shared.client.get("/api/v1/users", headers=shared.auth("admin"))
    assert response.status_code == 403
    await shared.service.audit.flush()
    entries = await shared.service.accounts.list_audit(action="access")
    assert entries[0].actor == "admin"
    assert entries[0].outcome == "denied"
    assert entries[0].target == "GET /api/v1/users"
    assert entries[0].client == "192.0.2.10"


def test_websocket_routes_declare_a_permission() -> None:
    sockets: list[Any] = [r for o, r in ROUTES if isinstance(o, APIWebSocketRoute)]
    assert [r.path for r in sockets] == ["/api/v1/live"]
    assert getattr(sockets[0].endpoint, PERMISSION_ATTRIBUTE) == Permission.READ_DATA.value
