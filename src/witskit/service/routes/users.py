"""``/api/v1/users``, ``/api/v1/api-keys`` and ``/api/v1/audit`` (``users:admin``, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from witskit.security.credentials import Password, Username
from witskit.security.rbac import Permission, Role
from witskit.service.accounts import AccountNotFound
from witskit.service.deps import Context, client_address, guard
from witskit.service.identity import Principal

__all__ = ["router"]

router = APIRouter()

ADMIN: Final = guard(Permission.ADMIN_USERS)
_USER_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {404: {"description": "No such user"}}


class _FromRecord(BaseModel):
    """An answer built from a stored record's attributes (``model_validate(record)``): only the
    fields declared here are read, so a record's hash never reaches a response."""

    model_config = ConfigDict(from_attributes=True)


class UserOut(_FromRecord):
    """A user account (never its password hash)."""

    username: str
    email: str | None
    roles: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserIn(BaseModel):
    """A user to create."""

    username: Username  # the account store checks it again, as for every way in
    password: Password
    roles: list[Role] = Field(default_factory=lambda: [Role.VIEWER])
    email: str | None = Field(default=None, max_length=255)


class UserPatch(BaseModel):
    """Changes to a user; fields left out stay as they are."""

    roles: list[Role] | None = None
    is_active: bool | None = None
    password: Password | None = None
    email: str | None = Field(default=None, max_length=255)


class ApiKeyOut(_FromRecord):
    """An API key's record (never the key)."""

    key_id: str
    name: str
    roles: list[str]
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new key: ``key`` is shown this once and cannot be read again."""

    key: str


class ApiKeyIn(BaseModel):
    """An API key to create, for a rig, a dashboard or a script."""

    name: str = Field(min_length=1, max_length=100)
    roles: list[Role] = Field(min_length=1)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class AuditOut(_FromRecord):
    """An audit entry."""

    id: int
    at: datetime
    actor: str | None
    action: str
    outcome: str
    target: str | None
    client: str | None
    request_id: str | None
    detail: dict[str, Any]


def _actor(request: Request) -> str | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.name if principal is not None else None


def _owner(request: Request) -> str | None:
    # A key made with a key answers to the same user as the key that made it.
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.owner if principal is not None else None


# Users ------------------------------------------------------------------------------------------
@router.get("/users", response_model=list[UserOut], tags=["users"], summary="List users", **ADMIN)
async def list_users(context: Context) -> list[UserOut]:
    """Every user account."""
    return [UserOut.model_validate(u) for u in await context.accounts.list_users()]


@router.post(
    "/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    tags=["users"],
    summary="Create a user",
    **guard(Permission.ADMIN_USERS, responses={409: {"description": "The name is taken"}}),
)
async def add_user(request: Request, context: Context, body: UserIn) -> UserOut:
    """Create a user (password hashed with Argon2id)."""
    record = await context.identity.add_user(
        body.username,
        body.password,
        [r.value for r in body.roles],
        email=body.email,
        actor=_actor(request),
        client=client_address(request),
    )
    return UserOut.model_validate(record)


@router.get(
    "/users/{username}",
    response_model=UserOut,
    tags=["users"],
    summary="One user",
    **guard(Permission.ADMIN_USERS, responses=_USER_NOT_FOUND),
)
async def get_user(context: Context, username: str) -> UserOut:
    """The user's account."""
    record = await context.accounts.get_user(username)
    if record is None:
        raise AccountNotFound(f"no user {username!r}")
    return UserOut.model_validate(record)


@router.patch(
    "/users/{username}",
    response_model=UserOut,
    tags=["users"],
    summary="Change a user",
    **guard(
        Permission.ADMIN_USERS,
        responses={**_USER_NOT_FOUND, 409: {"description": "Would leave no active super_admin"}},
    ),
)
async def update_user(request: Request, context: Context, username: str, body: UserPatch) -> UserOut:
    """Change roles, enable or disable, reset the password or the e-mail. A change of roles,
    status or password revokes the user's existing tokens."""
    record = await context.identity.update_user(
        username,
        roles=[r.value for r in body.roles] if body.roles is not None else None,
        is_active=body.is_active,
        password=body.password,
        email=body.email,
        actor=_actor(request),
        client=client_address(request),
    )
    return UserOut.model_validate(record)


# API keys ---------------------------------------------------------------------------------------
@router.get("/api-keys", response_model=list[ApiKeyOut], tags=["api keys"], summary="List API keys", **ADMIN)
async def list_api_keys(context: Context) -> list[ApiKeyOut]:
    """Every API key (revoked ones too), newest first."""
    return [ApiKeyOut.model_validate(k) for k in await context.accounts.list_api_keys()]


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["api keys"],
    summary="Create an API key",
    **ADMIN,
)
async def add_api_key(request: Request, context: Context, body: ApiKeyIn) -> ApiKeyCreated:
    """A new key with the given roles. The key is in this response only; store it now.

    The key answers to the caller (the user behind it, for a key made with a key): on every
    request it can do at most what that user's current roles allow, and nothing once the user is
    disabled.
    """
    key, record = await context.identity.add_api_key(
        body.name,
        [r.value for r in body.roles],
        expires_in_days=body.expires_in_days,
        actor=_actor(request),
        client=client_address(request),
        owner=_owner(request),
    )
    return ApiKeyCreated(key=key, **ApiKeyOut.model_validate(record).model_dump())


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    tags=["api keys"],
    summary="Revoke an API key",
    **guard(Permission.ADMIN_USERS, responses={404: {"description": "No such key"}}),
)
async def revoke_api_key(request: Request, context: Context, key_id: str) -> ApiKeyOut:
    """Revoke the key: refused from the next request on."""
    record = await context.identity.revoke_api_key(
        key_id, actor=_actor(request), client=client_address(request)
    )
    return ApiKeyOut.model_validate(record)


# Audit ------------------------------------------------------------------------------------------
@router.get("/audit", response_model=list[AuditOut], tags=["audit"], summary="Read the audit log", **ADMIN)
async def audit(
    context: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**62, description="Page back: entries older than this id")
    ] = None,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditOut]:
    """Audit entries, newest first."""
    await context.audit.flush()
    records = await context.accounts.list_audit(limit=limit, before_id=before_id, actor=actor, action=action)
    return [AuditOut.model_validate(a) for a in records]
