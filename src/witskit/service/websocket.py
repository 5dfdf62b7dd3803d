"""``/api/v1/live``: decoded frames as they arrive, over a WebSocket (``data:read``).

One JSON text message per frame (``DecodedFrame.to_record()``: source, timestamp, points, errors),
for one source (``?source=rig-7``) or all. The credential is checked before the handshake is
accepted: ``Authorization: Bearer ...`` or ``X-API-Key`` headers, or ``?token=`` for browsers
(which cannot set headers on a WebSocket). Refusals are real HTTP responses where the server
supports it (401 without a valid credential, 403 without the permission), else a close with code
1008.

``witskit run`` sends each frame as its pipeline decodes it, and the bad bytes its parsers skip
(``frame_error`` messages). ``witskit serve`` sends the frames another process stores, as its
:class:`~witskit.service.tailer.FrameTailer` finds them (within about one poll interval), from the
moment of the subscription on; the messages are the same.

``witskit run`` also sends each alarm firing and clearing of the source (or of every source) as it
happens: ``{"type": "alarm", "event_id", "rule", "rule_type", "state": "fired" | "cleared",
"severity", "source", "time", "code", "value", "unit", "message"}`` (the alarm history's fields;
see ``docs/analytics.md``). A frame message has no ``type``.

A slow client loses its oldest frames, never slows ingest (see :class:`~witskit.pipeline.LiveHub`).

The credential is checked at connect and again every ``WITS_LIVE_RECHECK_SECONDS`` (5 s) while the
stream is open, and at the instant it expires: a token past its ``exp``, a disabled user, a
revoked or expired API key, or roles that no longer grant ``data:read`` close the stream with code
1008 (policy violation) and reason ``credential expired or revoked``; no frame is sent after the
credential's expiry. A browser reconnects with a fresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from witskit.analytics.alarms import AlarmEvent
from witskit.errors import FrameError
from witskit.security.auth import AuthError
from witskit.security.rbac import Permission
from witskit.service.deps import Context, principal_for
from witskit.service.identity import Principal
from witskit.storage.errors import StorageError

__all__ = ["PERMISSION_ATTRIBUTE", "router"]

router = APIRouter(tags=["live"])

#: The attribute naming a WebSocket endpoint's permission (HTTP routes use OpenAPI ``x-permission``).
PERMISSION_ATTRIBUTE: Final = "x_permission"
#: Close code when the service shuts down.
_GOING_AWAY: Final = 1001
_POLICY: Final = 1008
#: Why a stream that was open is closed with 1008.
REVOKED: Final = "credential expired or revoked"


async def _refuse(websocket: WebSocket, status_code: int, detail: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code, headers=headers))
    else:
        await websocket.close(code=_POLICY, reason=detail)


def _credential(websocket: WebSocket, token: str | None) -> str | None:
    api_key = websocket.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    auth = websocket.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return token or None


@router.websocket("/live")
async def live(
    websocket: WebSocket,
    context: Context,
    source: str | None = Query(default=None, max_length=255),
    token: str | None = Query(default=None, max_length=4096),
) -> None:
    """Stream decoded frames of ``source`` (all sources when omitted)."""
    client = websocket.client.host if websocket.client is not None else None
    credential = _credential(websocket, token)
    try:
        principal = await principal_for(context.identity, credential, client)
    except HTTPException as exc:
        await _refuse(websocket, exc.status_code, str(exc.detail))
        return
    if not principal.can(Permission.READ_DATA):
        context.audit.record(
            "access",
            outcome="denied",
            actor=principal.name,
            target="WEBSOCKET /api/v1/live",
            client=client,
            permission=Permission.READ_DATA.value,
        )
        await _refuse(websocket, 403, f"permission {Permission.READ_DATA.value} required")
        return
    subscription = await context.subscribe(source)
    try:
        await websocket.accept()
    except BaseException:
        subscription.close()
        raise

    # Set when the credential lapses: the pump sends nothing more, whatever it holds.
    lapsed = asyncio.Event()

    def expired(current: Principal) -> bool:
        return current.expires_at is not None and time.time() >= current.expires_at

    async def watch() -> None:
        """Re-check the credential now and then, and at its expiry; return when it lapses."""
        current = principal
        interval = float(context.config.live_recheck_seconds)
        while True:
            wait = interval
            if current.expires_at is not None:
                wait = min(wait, max(current.expires_at - time.time(), 0.0))
            await asyncio.sleep(wait)
            if expired(current):
                break
            try:
                current = await context.identity.authenticate(credential or "", client)
            except AuthError:
                break
            except StorageError:
                # The accounts cannot be read (database down): nobody can revoke anything meanwhile
                # either. The stream goes on with what was known, never past its expiry, and the
                # check is tried again at the next interval.
                continue
            if not current.can(Permission.READ_DATA) or expired(current):
                break
        lapsed.set()

    async def pump() -> None:
        async for event in subscription:
            if lapsed.is_set() or expired(principal):
                return
            if isinstance(event, FrameError):
                # Bad bytes the parser skipped: the dashboard counts them per minute.
                message = {
                    "type": "frame_error",
                    "source": event.source,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "kind": event.kind,
                    "message": event.reason,
                    "line": event.line,
                    "offset": event.offset,
                }
                await websocket.send_text(json.dumps(message, separators=(",", ":")))
                continue
            if isinstance(event, AlarmEvent):
                alarm = {"type": "alarm", **event.to_dict()}
                await websocket.send_text(json.dumps(alarm, separators=(",", ":")))
                continue
            await websocket.send_text(json.dumps(event.to_record(), separators=(",", ":"), default=str))

    async def listen() -> None:
        # The client says nothing; reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

    sender = asyncio.create_task(pump(), name="witskit-live-send")
    receiver = asyncio.create_task(listen(), name="witskit-live-receive")
    watcher = asyncio.create_task(watch(), name="witskit-live-watch")
    try:
        await asyncio.wait({sender, receiver, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        subscription.close()
        for task in (sender, receiver, watcher):
            task.cancel()
        await asyncio.gather(sender, receiver, watcher, return_exceptions=True)
        if websocket.application_state is WebSocketState.CONNECTED and (
            websocket.client_state is WebSocketState.CONNECTED
        ):
            revoked = lapsed.is_set() or expired(principal)
            if revoked:
                context.audit.record(
                    "live.closed",
                    outcome="denied",
                    actor=principal.name,
                    target="WEBSOCKET /api/v1/live",
                    client=client,
                    reason=REVOKED,
                )
            with contextlib.suppress(Exception):
                await websocket.close(
                    code=_POLICY if revoked else _GOING_AWAY, reason=REVOKED if revoked else ""
                )


setattr(live, PERMISSION_ATTRIBUTE, Permission.READ_DATA.value)
