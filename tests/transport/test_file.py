"""FileSource: read a log to its end, or follow it like ``tail -F`` on real files in tmp_path."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.waiting import until
from witskit.errors import FrameError, SourceFileError, UsageError
from witskit.protocol import WITSFrame, iter_frames
from witskit.transport.base import SourceEvent
from witskit.transport.file import FileSource

WAIT = 5.0  # upper bound for any one event; the tests normally take milliseconds
POLL = 0.01
DOC = Path(__file__).resolve().parents[2] / "docs" / "serial_and_files.md"
DOC_BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def frame(n: int) -> bytes:
    """A distinct frame per n (record 01, item 08 = bit depth)."""
    return f"&&\r\n0108{n}.5\r\n011323.38\r\n!!\r\n".encode()


def depth(event: SourceEvent) -> str:
    assert isinstance(event, WITSFrame), event
    return event.lines[0][4:].decode()  # the value after the 4-digit code


def summary(events: list[SourceEvent]) -> list[tuple[object, ...]]:
    """What must match between two parses of the same bytes (not the receive timestamps)."""
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, WITSFrame):
            out.append(("frame", e.raw, e.lines, e.offset, e.line, e.sequence))
        else:
            out.append(("error", e.kind, e.reason, e.offset, e.line, e.excerpt))
    return out


async def next_event(it: AsyncIterator[SourceEvent]) -> SourceEvent:
    return await asyncio.wait_for(anext(it), WAIT)


async def take(it: AsyncIterator[SourceEvent], n: int) -> list[SourceEvent]:
    return [await next_event(it) for _ in range(n)]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


async def read_all(src: FileSource) -> list[SourceEvent]:
    async with src:
        return [event async for event in src]


# Read to the end ----------------------------------------------------------------------------
MIXED = (
    frame(1)
    + b"noise between frames\r\n"
    + frame(2)
    + b"&&\r\n0108\r\n&&\r\n"  # cut short by a new '&&'
    + frame(3)
    + b"!!\r\n"  # stray end marker
    + frame(4)
    + b"&&\r\n01083"  # the log ends inside a frame
)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 18])
async def test_read_to_end_equals_iter_frames_on_the_same_bytes(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(MIXED)
    src = FileSource(path, chunk_size=chunk_size)
    events = await read_all(src)
    # Same chunking: FrameParser's garbage byte counts still depend on it (reported upstream).
    expected = list(iter_frames(MIXED, source=src.name, chunk_size=chunk_size))
    assert summary(events) == summary(expected)
    assert [depth(e) for e in events if isinstance(e, WITSFrame)] == ["1.5", "2.5", "3.5", "4.5"]
    assert events[-1].kind == "truncated"  # type: ignore[union-attr]
    assert all(e.source == "rig.wits" for e in events)  # named by the file's name, as import does


async def test_an_empty_file_gives_no_events(tmp_path: Path) -> None:
    path = tmp_path / "empty.wits"
    path.write_bytes(b"")
    assert await read_all(FileSource(path)) == []


async def test_a_missing_file_is_a_source_file_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.wits"
    with pytest.raises(SourceFileError, match=re.escape(str(path))) as info:
        await read_all(FileSource(path))
    assert "no such file" in str(info.value)
    assert isinstance(info.value, OSError)


async def test_a_directory_is_a_source_file_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=re.escape(f"{tmp_path}: cannot read (not a regular file)")):
        await read_all(FileSource(tmp_path))


async def test_a_fifo_is_refused_rather_than_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SourceFileError, match="not a regular file"):
        await read_all(FileSource(fifo))


async def test_a_file_source_is_iterated_once(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(frame(1))
    src = FileSource(path)
    assert len(await read_all(src)) == 1
    with pytest.raises(UsageError, match="iterated once"):
        await read_all(src)


# Follow -------------------------------------------------------------------------------------
async def test_follow_gets_appended_frames_even_one_split_across_two_appends(tmp_path: Path) -> None:
    path = tmp_path / "live.wits"
    path.write_bytes(frame(1))
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    try:
        assert depth(await next_event(it)) == "1.5"
        pending = asyncio.ensure_future(anext(it))
        whole = frame(2)
        append(path, whole[:9])
        await asyncio.sleep(5 * POLL)  # the source reads the first half and waits for the rest
        assert not pending.done()
        append(path, whole[9:] + frame(3))
        assert depth(await asyncio.wait_for(pending, WAIT)) == "2.5"
        assert depth(await next_event(it)) == "3.5"
    finally:
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.wits"
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(5 * POLL)
        assert not pending.done()
        path.write_bytes(frame(7))
        assert depth(await asyncio.wait_for(pending, WAIT)) == "7.5"
    finally:
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_truncation_reports_the_partial_frame_and_reads_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "trunc.wits"
    path.write_bytes(frame(1) + frame(2) + b"&&\r\n0108")
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    try:
        assert [depth(e) for e in await take(it, 2)] == ["1.5", "2.5"]
        await until(lambda: src.position == path.stat().st_size)
        # copytruncate, or "> file": the file shrinks and the writer starts over.
        with path.open("r+b") as fh:
            fh.truncate(0)
        append(path, frame(3))
        error = await next_event(it)
        assert isinstance(error, FrameError)
        assert error.kind == "truncated"
        assert error.excerpt == b"&&\r\n0108"
        after = await next_event(it)
        assert depth(after) == "3.5"
        assert after.offset == 0  # a new parser: offsets are positions in the file again
        assert src.files_opened == 1  # same file, rewound
    finally:
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_rotation_loses_and_repeats_no_frame(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    writer = path.open("ab", buffering=0)  # the logger's handle survives the rename, as in logrotate
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    try:
        for n in range(3):
            writer.write(frame(n))
        assert [depth(e) for e in await take(it, 3)] == ["0.5", "1.5", "2.5"]

        # logrotate: rename; the logger still writes to the renamed file until told to reopen.
        path.rename(tmp_path / "rig.wits.1")
        writer.write(frame(3))
        assert depth(await next_event(it)) == "3.5"  # the path is missing: still on the old file
        path.touch()  # logrotate's "create": a new, empty file
        writer.write(frame(4))
        assert depth(await next_event(it)) == "4.5"  # the new file has no data yet: still old
        writer.close()

        writer = path.open("ab", buffering=0)  # the logger reopens (postrotate)
        writer.write(frame(5) + frame(6))
        assert [depth(e) for e in await take(it, 2)] == ["5.5", "6.5"]
        assert src.files_opened == 2

        # A second rotation while the source is not reading: old tail, then the new file.
        writer.write(frame(7))
        path.rename(tmp_path / "rig.wits.2")
        writer.write(frame(8))
        writer.close()
        writer = path.open("ab", buffering=0)
        writer.write(frame(9))
        assert [depth(e) for e in await take(it, 3)] == ["7.5", "8.5", "9.5"]
        assert src.files_opened == 3

        nothing_more = asyncio.ensure_future(anext(it))
        await asyncio.sleep(10 * POLL)
        assert not nothing_more.done()  # no frame read twice
        nothing_more.cancel()
        with pytest.raises(asyncio.CancelledError):
            await nothing_more
    finally:
        writer.close()
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_a_frame_cut_by_rotation_is_reported_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    whole = frame(1)
    path.write_bytes(whole[:6])
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await until(lambda: src.position == 6)
        path.rename(tmp_path / "rig.wits.1")
        path.write_bytes(whole[6:] + frame(2))
        first = await asyncio.wait_for(pending, WAIT)
        assert isinstance(first, FrameError)
        assert first.kind == "truncated"
        rest = await take(it, 2)
        assert isinstance(rest[0], FrameError)
        assert rest[0].kind == "garbage"
        assert depth(rest[1]) == "2.5"
    finally:
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_start_at_end_skips_old_frames_but_not_the_one_being_written(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    half = frame(2)[:10]
    path.write_bytes(frame(0) + frame(1) + half)
    src = FileSource(path, follow=True, start_at_end=True, poll_interval=POLL)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await until(lambda: src.files_opened == 1)
        append(path, frame(2)[10:] + frame(3))
        assert depth(await asyncio.wait_for(pending, WAIT)) == "2.5"
        assert depth(await next_event(it)) == "3.5"
    finally:
        await src.aclose()
        await it.aclose()  # type: ignore[attr-defined]


async def test_aclose_ends_a_waiting_follow_promptly(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(frame(1) + b"&&\r\n01")
    src = FileSource(path, follow=True, poll_interval=3600)  # only aclose() can end the wait
    it = aiter(src)
    assert depth(await next_event(it)) == "1.5"
    pending = asyncio.ensure_future(anext(it))
    await until(lambda: src.position == path.stat().st_size)
    await asyncio.sleep(POLL)
    await src.aclose()
    partial = await asyncio.wait_for(pending, WAIT)  # as a link does: the partial frame is reported
    assert isinstance(partial, FrameError)
    with pytest.raises(StopAsyncIteration):
        await next_event(it)
    assert src.closed
    assert src._file is None


async def test_aclose_while_the_consumer_holds_the_iterator_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(frame(1) + frame(2))
    async with FileSource(path, follow=True, poll_interval=POLL) as src:
        it = aiter(src)
        assert depth(await next_event(it)) == "1.5"
    assert src._file is None  # closed by aclose(), though the generator is parked at a yield
    assert depth(await next_event(it)) == "2.5"  # events already parsed are still delivered
    with pytest.raises(StopAsyncIteration):
        await next_event(it)


async def test_a_cancelled_consumer_leaves_no_open_file(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(b"")
    src = FileSource(path, follow=True, poll_interval=POLL)
    it = aiter(src)
    pending = asyncio.ensure_future(anext(it))
    await until(lambda: src.files_opened == 1)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert src._file is None


# Options and URLs ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"start_at_end": True}, "start_at_end without follow"),
    ],
)
def test_bad_options_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        FileSource("x.wits", **kwargs)  # type: ignore[arg-type]


def test_from_url_absolute_with_options(tmp_path: Path) -> None:
    src = FileSource.from_url(f"file://{tmp_path}/rig%20one.wits?follow=1&poll=0.5&from_end=1")
    assert src.path == tmp_path / "rig one.wits"
    assert src.follow
    assert src.poll_interval == 0.5
    assert src.start_at_end
    assert src.name == "rig one.wits"
    named = FileSource.from_url(f"file://{tmp_path}/rig.wits?name=rig-7")
    assert (named.name, named.path) == ("rig-7", tmp_path / "rig.wits")
    with pytest.raises(UsageError, match="name='' is empty"):
        FileSource.from_url(f"file://{tmp_path}/rig.wits?name=")


def test_from_url_defaults() -> None:
    src = FileSource.from_url("file:///var/log/rig.wits")
    assert src.path == Path("/var/log/rig.wits")
    assert (src.follow, src.start_at_end, src.poll_interval) == (False, False, 0.25)


@pytest.mark.parametrize(
    ("url", "relative"),
    [
        ("file://logs/rig.wits", "logs/rig.wits"),
        ("file:logs/rig.wits", "logs/rig.wits"),
        ("file://./rig.wits", "rig.wits"),
        ("file://rig.wits", "rig.wits"),
    ],
)
def test_from_url_relative_paths_use_the_working_directory(
    url: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src = FileSource.from_url(url)
    assert os.path.normpath(src.path) == str(tmp_path / relative)


def test_from_url_localhost_is_absolute() -> None:
    assert FileSource.from_url("file://localhost/var/log/rig.wits").path == Path("/var/log/rig.wits")


def test_from_url_passes_other_options() -> None:
    src = FileSource.from_url("file:///x.wits", chunk_size=10, parser_options={"max_line_length": 80})
    assert src.chunk_size == 10
    assert src.parser_options == {"max_line_length": 80}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://host:1", "not a file:// URL"),
        ("file://", "names no file"),
        ("file:///x?follow=2", "follow='2' is not a boolean"),
        ("file:///x?follow=", "follow=''"),
        ("file:///x?follow=1&follow=0", "'follow' is given twice"),
        ("file:///x?poll=fast", "poll='fast' is not a positive number of seconds"),
        ("file:///x?follow=1&poll=0", "poll='0'"),
        ("file:///x?from_end=1", "start_at_end without follow"),
        ("file:///x?tail=1&baud=9600", "unknown options 'baud', 'tail' for file://"),
        ("file:///x#frag", "fragment"),
    ],
)
def test_from_url_rejects(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        FileSource.from_url(url)


def test_from_url_keyword_options_override_the_query() -> None:
    src = FileSource.from_url("file:///x?follow=1&poll=2", poll_interval=0.5)
    assert src.follow
    assert src.poll_interval == 0.5


# The docs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_doc_examples_run(index: int, tmp_path: Path) -> None:
    """Each Python block of docs/serial_and_files.md runs and prints what its ``#>`` lines say.

    In a subprocess: the blocks call asyncio.run(), and a hang must end in a failure, not stall the suite.
    """
    code = DOC_BLOCKS[index]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = re.findall(r"^#> (.+)$", code, flags=re.M)
    assert expected
    for want in expected:
        assert want.strip() in proc.stdout, (want, proc.stdout)


def test_the_doc_has_its_examples() -> None:
    assert len(DOC_BLOCKS) >= 3


def test_open_source_picks_the_file_source(tmp_path: Path) -> None:
    from witskit.transport import open_source

    src = open_source(f"file://{tmp_path}/rig.wits?follow=1&poll=0.5")
    assert isinstance(src, FileSource)
    assert (src.path, src.follow, src.poll_interval) == (tmp_path / "rig.wits", True, 0.5)
