"""Request body limits, as pure ASGI middleware (nothing is buffered to enforce them).

Every request body the API accepts is small: a login form, a refresh token, a user, an API key, a
connection URL. Without a limit one unauthenticated ``POST /api/v1/auth/logout`` of 300 MB grew the
server by ~600 MB (the body, then its decoded copy) that it never gave back.

:class:`BodyLimitMiddleware` refuses a body over its limit with **413** before the application reads
it: at once when ``Content-Length`` says so, and as soon as the bytes received so far pass the limit
when the body is streamed (``Transfer-Encoding: chunked``, or a ``Content-Length`` that lies). The
rest of the body is never read (uvicorn stops reading the socket and closes the connection after the
answer). The limit of ``/api/v1/auth/*`` (public routes) is :data:`AUTH_MAX_BODY_BYTES`; everything
else has ``WITS_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AUTH_MAX_BODY_BYTES", "DEFAULT_MAX_BODY_BYTES", "BodyLimitMiddleware"]

#: The largest body of an auth route: a login form of a 64-character name and a 1,024-character
#: password, every character non-ASCII and percent-encoded (4 bytes x 3), is about 12.5 KiB.
AUTH_MAX_BODY_BYTES: Final = 16 * 1024
#: The default of ``WITS_MAX_BODY_BYTES``: the largest body of any other route (a user, a
#: connection URL with its options) is a few KiB; 64 KiB leaves room without inviting abuse.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024


class BodyLimitMiddleware:
    """413 for a request body over the limit of its path, checked before and while it is read."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        auth_max_bytes: int = AUTH_MAX_BODY_BYTES,
        auth_prefix: str = "/api/v1/auth/",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.auth_max_bytes = min(auth_max_bytes, max_bytes)
        self.auth_prefix = auth_prefix

    def limit_for(self, path: str) -> int:
        """The body limit of a path."""
        return self.auth_max_bytes if path.startswith(self.auth_prefix) else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared: int | None = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the application's read of the body: its exception handling
                    # answers 413, and nothing more is read.
                    raise HTTPException(413, _detail(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _too_large(send, limit)


def _detail(limit: int) -> str:
    return f"request body too large: at most {limit} bytes here"


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
