"""Roles and permissions, exactly as the plan's table, and the ``require_permission`` decorator.

Roles map to permissions on the server only; a client can never ask for a permission. The current
principal's roles live in a context variable that the HTTP layer sets per request, so the decorator
works on plain and async functions alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Role",
    "bounded_roles",
    "current_roles",
    "get_current_user_roles",
    "has_permission",
    "permissions_for",
    "require_permission",
]

P = ParamSpec("P")
T = TypeVar("T")


class Permission(StrEnum):
    """What an action needs."""

    READ_DATA = "data:read"
    WRITE_DATA = "data:write"
    ADMIN_USERS = "users:admin"
    MANAGE_CONNECTIONS = "connections:manage"
    VIEW_ANALYTICS = "analytics:view"
    ACK_ALARMS = "alarms:ack"
    MANAGE_ALARMS = "alarms:manage"


class Role(StrEnum):
    """Who someone is."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"


ROLE_PERMISSIONS: dict[Role, set[Permission]] = {
    Role.VIEWER: {Permission.READ_DATA, Permission.VIEW_ANALYTICS},
    Role.OPERATOR: {
        Permission.READ_DATA,
        Permission.WRITE_DATA,
        Permission.VIEW_ANALYTICS,
        Permission.ACK_ALARMS,
    },
    Role.ADMIN: {
        Permission.READ_DATA,
        Permission.WRITE_DATA,
        Permission.MANAGE_CONNECTIONS,
        Permission.VIEW_ANALYTICS,
        Permission.ACK_ALARMS,
        Permission.MANAGE_ALARMS,
    },
    Role.SUPER_ADMIN: set(Permission),
}

_current_roles: ContextVar[tuple[str, ...]] = ContextVar("witskit_current_roles", default=())


def permissions_for(roles: Iterable[str]) -> set[Permission]:
    """Every permission the roles grant; unknown role names grant nothing."""
    granted: set[Permission] = set()
    for name in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return granted


def bounded_roles(roles: Iterable[str], ceiling: Iterable[str]) -> tuple[str, ...]:
    """``roles`` cut down to what ``ceiling`` (another principal's roles) grants.

    ``roles`` themselves when the ceiling grants everything they do; otherwise the largest roles
    whose permissions both grant (an API key with ``super_admin`` made by a user who is now an
    ``admin`` acts as an ``admin``), possibly none.
    """
    roles = tuple(roles)
    allowed = permissions_for(roles) & permissions_for(ceiling)
    if permissions_for(roles) <= allowed:
        return roles
    fits = [r for r in Role if ROLE_PERMISSIONS[r] <= allowed]
    return tuple(r.value for r in fits if not any(ROLE_PERMISSIONS[r] < ROLE_PERMISSIONS[o] for o in fits))


def has_permission(roles: Iterable[str], permission: Permission) -> bool:
    """True when any of the roles grants ``permission``."""
    return permission in permissions_for(roles)


def get_current_user_roles() -> tuple[str, ...]:
    """The roles of the principal handling the current request or task."""
    return _current_roles.get()


@contextmanager
def current_roles(roles: Iterable[str]) -> Iterator[None]:
    """Run a block as a principal with these roles (the HTTP layer wraps each request in this)."""
    token = _current_roles.set(tuple(roles))
    try:
        yield
    finally:
        _current_roles.reset(token)


def require_permission(required_permission: Permission) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Refuse to run the function unless the current roles grant the permission.

    Raises :class:`PermissionError` ("Permission data:read required"). Works on sync and async
    functions (for an async one the check happens when it is awaited).
    """

    def check() -> None:
        if not has_permission(get_current_user_roles(), required_permission):
            raise PermissionError(f"Permission {required_permission.value} required")

    def decorator(func: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                check()
                return await func(*args, **kwargs)

            async_wrapper.required_permission = required_permission  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            check()
            return func(*args, **kwargs)

        wrapper.required_permission = required_permission  # type: ignore[attr-defined]
        return wrapper

    return decorator
