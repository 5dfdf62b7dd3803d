"""``AsyncTCPReader``: the implementation plan's reader (Task 3.1), a thin wrapper on TCPSource.

The plan's reader yields each good frame as text and takes a ``retry_policy``. Everything it does
(connect, handshake keep-alive, idle timeout, parse, reconnect) is
:class:`~witskit.transport.tcp.TCPSource`'s loop; this class only changes what comes out: frame
text instead of frame objects, with FrameErrors counted and reported instead of yielded.

Reconnection follows the plan's contract. Without ``retry_policy`` there is one connection
attempt and no reconnection: a peer that cannot be reached raises
:class:`~witskit.errors.ConnectError` (a :class:`ConnectionError`), and when the peer closes the
connection the stream simply ends. With a policy, each (re)connection is tried as the policy says
and a dropped link is reconnected; the stream raises ConnectError once the policy is spent.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Self

from witskit.errors import ConnectionClosed, FrameError
from witskit.transport.base import one_attempt
from witskit.transport.error_handling import ErrorHandler
from witskit.transport.resilience import RetryPolicy
from witskit.transport.tcp import TCPSource

__all__ = ["AsyncTCPReader"]


class AsyncTCPReader:
    """Read WITS frames from an EDR over TCP: ``async for text in reader.stream()``.

    ``options`` are :class:`~witskit.transport.tcp.TCPSource` options (``handshake``,
    ``handshake_interval``, ``idle_timeout``, ``request``/``request_interval``, ``connect_timeout``,
    ``on_status``, ``parser_options``, ``ssl_context``, ``server_hostname``, ``reconnect``...).
    Malformed frames and garbage are counted in :attr:`frame_errors`; the source hands them to
    :attr:`error_handler` (which logs them) as PARSING errors, as it does its link problems.
    """

    def __init__(
        self,
        host: str,
        port: int,
        retry_policy: RetryPolicy | None = None,
        *,
        error_handler: ErrorHandler | None = None,
        **options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.retry_policy = retry_policy
        #: Receives a PARSING record per FrameError and a CONNECTION record per failed link.
        self.error_handler = error_handler if error_handler is not None else ErrorHandler()
        #: Good frames yielded so far.
        self.frames_received = 0
        #: Malformed frames and garbage runs seen so far (not yielded).
        self.frame_errors = 0
        options.setdefault("reconnect", retry_policy is not None)
        self._source = TCPSource(
            host,
            port,
            retry=retry_policy if retry_policy is not None else one_attempt(),
            error_handler=self.error_handler,
            **options,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._source.name} {self._source.state.value}>"

    @property
    def source(self) -> TCPSource:
        """The underlying source (for its ``state``, ``connections`` and ``send()``)."""
        return self._source

    @property
    def name(self) -> str:
        """The endpoint, ``tcp://host:port`` (``tls://`` with TLS)."""
        return self._source.name

    @property
    def connection_attempts(self) -> int:
        """Connection attempts made so far, successful or not."""
        return self._source.connection_attempts

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context in use, or ``None`` for plain TCP."""
        return self._source.ssl_context

    async def stream(self) -> AsyncIterator[str]:
        """Each good frame's text, as received (``&&`` to ``!!``, original line endings)."""
        events = self._source.events()
        try:
            async for event in events:
                if isinstance(event, FrameError):
                    self.frame_errors += 1  # the source gave it to error_handler as it yielded it
                    continue
                self.frames_received += 1
                # latin-1 maps every byte to one character: the text is exactly the bytes received.
                yield event.raw.decode("latin-1")
        except ConnectionClosed:
            # A clean close by the peer: without reconnection that is the plan's normal end of
            # stream. Resets and idle timeouts (other ConnectionLost errors) still raise.
            if self._source.reconnect:
                raise
        finally:
            # Closing the link now, not when the garbage collector finds the generator, when the
            # consumer breaks out of its loop.
            if isinstance(events, AsyncGenerator):
                await events.aclose()

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting; a running :meth:`stream` then ends."""
        await self._source.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
