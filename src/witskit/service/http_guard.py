"""uvicorn's HTTP/1.1 protocol (h11) with two limits it lacks: a time to receive each request, and
a cap on open connections.

uvicorn closes an idle connection only once it has answered a request on it (its keep-alive
timeout). A client that connects and sends nothing, or trickles a request head or body a byte at a
time (slowloris), kept its socket for ever; a few thousand of them used up the process's file
descriptors, which ``witskit run`` also needs for its spool, its database and its rig listeners.

:func:`guarded_h11` makes the protocol class given to uvicorn as ``http=``:

* a connection that has not sent a whole request (head and body) within ``request_timeout``
  seconds of opening, or of its previous answer, is closed. Time spent by the application (a long
  export being streamed) does not count: the clock runs only while the server waits for the
  client. An upgraded WebSocket is the WebSocket protocol's from then on (its pings).
* past ``max_connections`` open connections (HTTP and WebSocket) a new one is closed at once,
  unread. The default, :func:`default_max_connections`, is a quarter of the open-file limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["default_max_connections", "guarded_h11"]

log = logging.getLogger("witskit.service")

#: The bounds of the default connection cap: a handful of dashboards and scripts need tens of
#: connections; thousands would mean the open-file limit is huge, and the cap pointless.
_MIN_CONNECTIONS: Final = 64
_MAX_CONNECTIONS: Final = 4096
#: The refusals past the cap are logged at most this often (seconds): a flood must not flood the log.
_LOG_EVERY: Final = 60.0
#: The client's states in which the server waits for it (for a request, or for the rest of one).
_WAITING: Final = (h11.IDLE, h11.SEND_BODY)


def default_max_connections() -> int:
    """A quarter of the process's open-file limit (``ulimit -n``), within 64-4096: the other three
    quarters stay for the spool, the database and the rig listeners."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 1024
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(_MIN_CONNECTIONS, min(_MAX_CONNECTIONS, soft // 4))


def guarded_h11(*, request_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """The h11 protocol class with these limits (see the module's docstring)."""
    refused_at = [-_LOG_EVERY]

    class GuardedH11Protocol(H11Protocol):
        _refused = False
        _read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections:
                self._refused = True
                now = time.monotonic()
                if now - refused_at[0] >= _LOG_EVERY:
                    refused_at[0] = now
                    log.warning(
                        "the API has %d connections open (WITS_HTTP_MAX_CONNECTIONS): new ones are "
                        "closed unread",
                        len(self.connections),
                    )
                transport.abort()
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._disarm()
            super().handle_websocket_upgrade(event)

        def _arm(self) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(request_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _too_slow(self) -> None:
            self._read_timer = None
            if self.transport.is_closing() or self.conn.their_state not in _WAITING:
                return  # closing already, or the request is in and the application has it
            log.debug("closing %s: no whole request within %s s", self.client, request_timeout)
            self.transport.abort()

    return GuardedH11Protocol
