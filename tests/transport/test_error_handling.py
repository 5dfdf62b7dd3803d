"""Transports report problems through one channel (issue 11, item 5): a FrameError in the data
stream or a LinkStatus to ``on_status``. The seed's error-handler records derive from those events,
so a status callback and an error handler never disagree about what went wrong."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from support.edr import Peer, close_writer, fast_retry, push, take
from support.waiting import until
from witskit.errors import ConnectError, FrameError
from witskit.transport import (
    ErrorCategory,
    ErrorHandler,
    ErrorSeverity,
    LinkState,
    LinkStatus,
    ListenerSource,
    TCPSource,
    WitsError,
)
from witskit.transport.error_handling import error_record


def recorder(handler: ErrorHandler) -> list[WitsError]:
    records: list[WitsError] = []
    for category in ErrorCategory:
        handler.register_callback(category, records.append)
    return records


def same(a: WitsError | None, b: WitsError) -> bool:
    return a is not None and (a.category, a.severity, a.message, a.source) == (
        b.category,
        b.severity,
        b.message,
        b.source,
    )


async def test_a_refused_link_gives_each_problem_once_as_a_status_and_its_record(edr) -> None:
    server = await edr(Peer.hold)
    port = server.port
    await server.aclose()  # nothing listens on the port now
    statuses: list[LinkStatus] = []
    handler = ErrorHandler()
    records = recorder(handler)
    src = TCPSource("127.0.0.1", port, retry=fast_retry(2), on_status=statuses.append, error_handler=handler)
    with pytest.raises(ConnectError):
        await take(src, 1)
    problems = [s for s in statuses if s.error is not None]
    assert len(problems) == 2 == len(records)
    assert all(s.kind == "lost" for s in problems)
    assert all(same(error_record(s), r) for s, r in zip(problems, records, strict=True))
    assert records[0].category is ErrorCategory.CONNECTION
    assert records[0].severity is ErrorSeverity.HIGH


async def test_a_refused_peer_is_one_status_and_the_handler_fed_from_it_records_the_same() -> None:
    statuses: list[LinkStatus] = []
    given, fed = ErrorHandler(), ErrorHandler()
    given_records, fed_records = recorder(given), recorder(fed)

    def status(s: LinkStatus) -> None:
        statuses.append(s)
        fed.on_status(s)  # an error handler is just one more listener of the status stream

    async with ListenerSource(
        "127.0.0.1", 0, allowlist=["127.0.0.2"], on_status=status, error_handler=given
    ) as listener:
        reader, stranger = await push(listener.port, b"&&\r\n01083650.40\r\n!!\r\n")
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        await close_writer(stranger)
        await until(lambda: listener.refused == 1)
    refused = [s for s in statuses if s.error is not None]
    assert [s.kind for s in refused] == ["refused"]
    assert len(given_records) == len(fed_records) == 1
    assert same(error_record(refused[0]), given_records[0])
    assert same(given_records[0], fed_records[0])
    assert given_records[0].category is ErrorCategory.AUTHORIZATION
    assert given_records[0].message == "refused: not in the allowlist"


def test_records_derive_from_events() -> None:
    good = LinkStatus("tcp://h:1", LinkState.CONNECTED)
    assert error_record(good) is None
    closed = LinkStatus("tcp://h:1", LinkState.DISCONNECTED, 1, "closed by the peer", kind="closed")
    record = error_record(closed)
    assert record is not None
    assert (record.category, record.severity) == (ErrorCategory.CONNECTION, ErrorSeverity.LOW)
    bad = FrameError("garbage", source="rig-1", offset=7, line=2, kind="garbage")
    record = error_record(bad)
    assert record is not None
    assert record.category is ErrorCategory.PARSING
    assert record.details == {"kind": "garbage", "offset": 7, "line": 2}
    assert record.message == bad.message
    assert record.source == "rig-1"


async def test_a_sources_frame_errors_reach_its_error_handler_as_they_are_yielded(edr) -> None:
    async def noisy(peer: Peer) -> None:
        await peer.send(b"line noise\r\n&&\r\n01083650.40\r\n!!\r\n")

    handler = ErrorHandler()
    records = recorder(handler)
    server = await edr(noisy)
    src = TCPSource("127.0.0.1", server.port, retry=fast_retry(1), handshake=None, error_handler=handler)
    events = await take(src, 2)
    await src.aclose()
    errors = [e for e in events if isinstance(e, FrameError)]
    assert len(errors) == 1
    assert len(records) == 1
    assert same(error_record(errors[0]), records[0])


async def test_a_listeners_frame_errors_reach_its_error_handler() -> None:
    handler = ErrorHandler()
    records = recorder(handler)
    async with ListenerSource("127.0.0.1", 0, error_handler=handler) as listener:
        _, writer = await push(listener.port, b"line noise\r\n&&\r\n01083650.40\r\n!!\r\n")
        events = await take(listener, 2)
        await close_writer(writer)
    errors = [e for e in events if isinstance(e, FrameError)]
    assert len(errors) == 1
    assert [r.category for r in records] == [ErrorCategory.PARSING]
    assert same(error_record(errors[0]), records[0])
