"""``/api/v1/connections``: ingest sources at run time (``connections:manage``, audited).

What is added here is kept in the database and restored when ``witskit run`` starts again, started
or stopped as it was left (see :mod:`witskit.service.connections`). Stopping and starting a source
of the pipeline file lasts until the process ends: the file says what runs at start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from witskit.security.logging import redact_text
from witskit.security.rbac import Permission
from witskit.service.audit import Outcome
from witskit.service.connections import STORED_NAME_MAX, Connection
from witskit.service.deps import AppContext, ConnectionControl, Context, client_address, guard
from witskit.service.identity import Principal

__all__ = ["router"]

router = APIRouter(prefix="/connections", tags=["connections"])

MANAGE: Final = guard(Permission.MANAGE_CONNECTIONS)
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {404: {"description": "No connection by that name"}}


class ConnectionOut(BaseModel):
    """A connection: a named source URL and its state."""

    name: str
    url: str = Field(description="The URL, any password masked")
    transport: str
    state: str = Field(description="stopped, running, connecting, connected, disconnected or closed")
    running: bool
    added_at: datetime
    started_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, conn: Connection) -> ConnectionOut:
        """From a :class:`Connection`."""
        status_ = conn.last_status
        return cls(
            name=conn.name,
            url=conn.display_url,
            transport=conn.transport,
            state=conn.state,
            running=conn.running,
            added_at=conn.added_at,
            started_at=conn.started_at,
            last_error=status_.error if status_ is not None else None,
        )


class ConnectionIn(BaseModel):
    """A source to add: ``tcp://``, ``tls://``, ``tcp-listen://``, ``tls-listen://``, ``serial://``
    or ``sim://`` (options in the query string)."""

    url: str = Field(min_length=3, max_length=2048, examples=["sim://rig-9?rate=1"])
    name: str | None = Field(default=None, min_length=1, max_length=STORED_NAME_MAX, examples=["rig-7"])
    start: bool = True


def _connections(context: AppContext) -> ConnectionControl:
    # In the handler, not a dependency: a bad body is a 422 before this 409, as it always was.
    if context.connections is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this process does not ingest (witskit serve): use witskit run"
        )
    return context.connections


def _actor(request: Request) -> str | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.name if principal is not None else None


def _audit(
    request: Request,
    context: AppContext,
    action: str,
    target: str,
    outcome: str = Outcome.SUCCESS,
    **detail: str,
) -> None:
    context.audit.record(
        action,
        outcome=outcome,
        actor=_actor(request),
        target=target,
        client=client_address(request),
        **detail,
    )


@router.get("", response_model=list[ConnectionOut], summary="List connections", **MANAGE)
async def list_connections(context: Context) -> list[ConnectionOut]:
    """Every connection of this process, started or not."""
    return [ConnectionOut.of(c) for c in _connections(context)]


@router.post(
    "",
    response_model=ConnectionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a connection",
    **guard(
        Permission.MANAGE_CONNECTIONS,
        responses={
            409: {"description": "The process does not ingest"},
            422: {"description": "Bad URL or name"},
        },
    ),
)
async def add_connection(request: Request, context: Context, body: ConnectionIn) -> ConnectionOut:
    """Add a source (and start it unless ``start`` is false); it is kept across restarts."""
    connections = _connections(context)
    try:
        conn = await connections.add(body.url, name=body.name, start=body.start, actor=_actor(request))
    except Exception as exc:
        reason = redact_text(str(exc))
        _audit(request, context, "connection.add", body.name or "", Outcome.FAILURE, reason=reason)
        raise
    _audit(request, context, "connection.add", conn.name, url=conn.display_url, started=str(conn.running))
    return ConnectionOut.of(conn)


@router.get(
    "/{name:path}",
    response_model=ConnectionOut,
    summary="One connection",
    **guard(Permission.MANAGE_CONNECTIONS, responses=_NOT_FOUND),
)
async def get_connection(context: Context, name: str) -> ConnectionOut:
    """The connection's state."""
    return ConnectionOut.of(_connections(context).get(name))


@router.post(
    "/{name:path}/start",
    response_model=ConnectionOut,
    summary="Start",
    **guard(Permission.MANAGE_CONNECTIONS, responses=_NOT_FOUND),
)
async def start_connection(request: Request, context: Context, name: str) -> ConnectionOut:
    """Start reading the source (no-op when it runs)."""
    conn = await _connections(context).start(name)
    _audit(request, context, "connection.start", name)
    return ConnectionOut.of(conn)


@router.post(
    "/{name:path}/stop",
    response_model=ConnectionOut,
    summary="Stop",
    **guard(Permission.MANAGE_CONNECTIONS, responses=_NOT_FOUND),
)
async def stop_connection(request: Request, context: Context, name: str) -> ConnectionOut:
    """Stop reading the source; what was received is kept and written."""
    conn = await _connections(context).stop(name)
    _audit(request, context, "connection.stop", name)
    return ConnectionOut.of(conn)


@router.delete(
    "/{name:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a connection",
    **guard(Permission.MANAGE_CONNECTIONS, responses=_NOT_FOUND),
)
async def remove_connection(request: Request, context: Context, name: str) -> None:
    """Stop and forget the connection (its stored data stays)."""
    await _connections(context).remove(name)
    _audit(request, context, "connection.remove", name)
