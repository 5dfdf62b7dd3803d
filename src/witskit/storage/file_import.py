"""``witskit import``'s file reader: a second process decodes a WITS log while this one writes it.

Decoding a point (~0.65 µs) and writing it (~0.6 µs on the client side) are both Python, so in one
process they share one GIL: decoding in a thread beside the write gained nothing, and ``witskit
import`` ran at ~40% of a bare COPY of the same points. Here a reader process (``python -m
witskit.storage.file_import``, the same interpreter) decodes the file, computes each frame's key
(:func:`witskit.storage.prepare.prepare_rows`) and sends the frames batch by batch; the importing
process only turns them into rows and writes. The reader decodes batch N+1 on the other core while
batch N is written: it is at most one batch ahead (it blocks on the pipe), so memory stays bounded.

One reader reads every file of the import in turn (its jobs, ``marshal``-ed on its stdin): the
next file's first batch is decoded while the last one's are written, so a month of day files
is one pipeline, not 30 that each start empty. Its stdout carries messages of a 4-byte big-endian
length and a ``marshal``-ed tuple (plain values only; the reader runs the same interpreter, whose
marshal format it shares):

* ``("info", text)``: a bad stretch of a file, ``path:line: reason``;
* ``("batch", file, rows, (frames, points, bad stretches), file position, (end offset, end
  line))``: the end is just after the batch's last frame, where an import stopped after this
  batch resumes; ``("end", file)``: that file is read to its end;
* ``("error", text)``: the reader cannot go on (a file cannot be read); ``("done",)``: the end.

The reader ignores Ctrl-C (the importing process handles it and stops the reader) and exits when
the importing process goes away (its next write to the pipe fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import marshal
import os
import signal
import struct
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

from witskit.errors import WitsKitError
from witskit.storage.imports import ends_a_frame
from witskit.storage.prepare import PreparedFrame, prepare_rows

__all__ = ["FileBatch", "FileJob", "ReaderFailed", "batch_gc", "read_batches", "reader_batches"]

_LENGTH: Final = struct.Struct(">I")
#: A message longer than this is not one the reader sent (a batch of 20,000 frames is ~12 MB).
_MAX_MESSAGE: Final = 1 << 30
#: The stderr the reader may write (a crash before its first message) kept for the error line.
_STDERR_KEEP: Final = 4096


#: A file to read: (its name as given, the frames' source, byte offset and line to start at, and
#: how the file was when the start was chosen: the length and SHA-256 of its head).
FileJob = tuple[str, str, int, int, int, str]


class FileBatch(NamedTuple):
    """One batch of a file: its frames (prepared), counts, file position and resume point."""

    rows: list[PreparedFrame]
    frames: int
    points: int
    errors: int
    position: int
    end: tuple[int, int]


class ReaderFailed(WitsKitError):
    """The reader process could not read the file, or stopped without finishing it."""


@contextlib.contextmanager
def batch_gc() -> Iterator[Callable[[], int]]:
    """Python's cyclic garbage collector off while batches are built and written; the function
    yielded collects once, to be called after each batch; on exit the collector is as it was.

    A batch holds ~100,000 tracked containers (a frame's codes, values, lines) that all die at
    once: the automatic collector ran full collections over them again and again while they were
    alive, about half of the importing process's CPU (0.42 -> 0.20 s of CPU per 20,000-frame
    write). A collection of the young generations between batches, when almost nothing made
    since is alive, costs next to nothing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield _collect_young
    finally:
        if was:
            gc.enable()


def _collect_young() -> int:
    # The young generations only: what was made since the last batch. A full collection also
    # walked everything the process had loaded (SQLAlchemy, the drivers): ~90 ms a batch.
    return gc.collect(1)


def read_batches(
    fh: IO[bytes], display: str, name: str, base_offset: int, base_line: int, batch_size: int
) -> Iterator[tuple[Any, ...]]:
    """The messages of a file read from ``base_offset`` (the file's line ``base_line``), in order.

    ``display`` is how the file is named in a bad-stretch line; ``name`` is the frames' source.
    """
    from witskit.protocol import FrameError, iter_decode

    batch: list[Any] = []
    frames = points = errors = 0
    line0 = base_line - 1
    end = (base_offset, base_line)
    fh.seek(base_offset)
    for event in iter_decode(fh, source=name):
        if isinstance(event, FrameError):
            errors += 1
            yield ("info", f"{display}:{event.line + line0}: {event.reason}")
            continue
        batch.append(event)
        frames += 1
        points += len(event.codes)
        raw = event.frame.raw
        end = (base_offset + event.frame.offset + len(raw), event.frame.line + line0 + raw.count(b"\n"))
        if len(batch) >= batch_size:
            yield ("batch", _take_rows(batch, name), (frames, points, errors), fh.tell(), end)
            frames = points = errors = 0
    yield ("batch", _take_rows(batch, name), (frames, points, errors), fh.tell(), end)


def _take_rows(batch: list[Any], name: str) -> list[PreparedFrame]:
    """The batch's rows, the batch emptied: while they are written nothing here holds the decoded
    frames or the rows (no local of the suspended generator), so the collection after the batch
    finds almost nothing alive."""
    rows = prepare_rows(batch, name).get(name, []) if batch else []
    batch.clear()
    return rows


def _same_file(fh: IO[bytes], offset: int, head_len: int, head: str) -> bool:
    """Whether the file opened is the one whose resume point was chosen (before any file was read,
    perhaps an hour ago): its head hashes the same and a frame's ``!!`` still ends at ``offset``
    (line endings aside), as ``witskit import`` checks when it chooses it."""
    if os.fstat(fh.fileno()).st_size < offset:
        return False
    fh.seek(0)
    if hashlib.sha256(fh.read(head_len)).hexdigest() != head:
        return False
    return ends_a_frame(fh, offset)


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def main(argv: list[str]) -> int:
    """The reader process: ``python -m witskit.storage.file_import BATCH``, its jobs on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    batch = int(argv[0])
    # The importing process's own list of plain tuples, over a pipe only it holds.
    jobs: list[FileJob] = marshal.loads(sys.stdin.buffer.read())  # noqa: S302
    # The messages go on a copy of fd 1; anything printed by mistake goes to stderr, not into them.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # What this process has loaded stays for its life: no collection need look at it.
    gc.freeze()
    try:
        with batch_gc() as collect:
            for index, (path, name, planned, planned_line, head_len, head) in enumerate(jobs):
                try:
                    with open(path, "rb") as fh:
                        offset, line = planned, planned_line
                        if offset and not _same_file(fh, offset, head_len, head):
                            _send(out, ("changed", index))
                            offset, line = 0, 1
                        for message in read_batches(fh, path, name, offset, line, batch):
                            if message[0] == "batch":
                                _send(out, ("batch", index, *message[1:]))
                                del message  # the batch is freed before the collection
                                collect()
                            else:
                                _send(out, message)
                except OSError as exc:
                    if isinstance(exc, BrokenPipeError):
                        raise
                    _send(out, ("error", f"{path}: cannot read: {exc.strerror or exc}"))
                    return 1
                except Exception as exc:  # reported by the importing process as one line
                    _send(out, ("error", f"{path}: {type(exc).__name__}: {exc}"))
                    return 1
                _send(out, ("end", index))
        _send(out, ("done",))
    except BrokenPipeError:
        # The importing process has gone: nobody is left to read what this one decodes.
        os._exit(1)
    return 0


@contextlib.asynccontextmanager
async def reader_batches(
    jobs: Sequence[FileJob],
    batch_size: int,
    on_info: Callable[[str], None],
    on_changed: Callable[[int], None] | None = None,
) -> AsyncIterator[AsyncIterator[tuple[int, FileBatch | None]]]:
    """Start a reader process on the files of ``jobs`` and yield (file's index, batch) in order,
    and (index, None) when that file is read to its end.

    Bad-stretch lines go to ``on_info`` as they come. A file that is no longer the one its job
    describes (replaced or cut since its resume point was chosen) is read from its start instead,
    and ``on_changed`` gets its index first. Raises :class:`ReaderFailed` when the reader cannot
    read a file or stops before the end. The process is stopped on exit.
    """
    # -P: not the current directory first on the child's path (a ``witskit/`` or ``struct.py`` in
    # the folder an import runs in would be run instead); this process's own package first, so
    # the reader is exactly the code that reads its messages.
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH")))),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",
        "-m",
        "witskit.storage.file_import",
        str(batch_size),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    reading: asyncio.Future[None] | None = None
    drain: asyncio.Future[None] | None = None
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr = bytearray()
        drain = asyncio.ensure_future(_keep_tail(proc.stderr, stderr))
        proc.stdin.write(
            marshal.dumps([(str(p), str(n), int(o), int(ln), int(hl), str(h)) for p, n, o, ln, hl, h in jobs])
        )
        with contextlib.suppress(ConnectionError):  # a reader that died at once is reported below
            await proc.stdin.drain()
        proc.stdin.close()
        current = [0]  # the file the last message was about

        # The next message is read and unpacked by a task of its own, while the store writes the
        # one before (and waits for the database): its ~0.05 s a batch is not added to the write's.
        ahead: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=1)

        async def pump() -> None:
            assert proc.stdout is not None
            try:
                while True:
                    head = await proc.stdout.readexactly(_LENGTH.size)
                    size = _LENGTH.unpack(head)[0]
                    if size > _MAX_MESSAGE:
                        raise ValueError(f"a message of {size} bytes")
                    # Our own child's plain values, over a pipe only it holds: no one else's bytes.
                    message = marshal.loads(await proc.stdout.readexactly(size))  # noqa: S302
                    await ahead.put(message)
                    if message[0] in ("done", "error"):
                        return
            except asyncio.IncompleteReadError:
                await ahead.put(("eof", ""))
            except (ValueError, EOFError, TypeError, MemoryError) as exc:
                await ahead.put(("eof", f"unreadable message from the reader ({exc})"))

        reading = asyncio.ensure_future(pump())

        def named(index: int) -> str:
            return jobs[index][0] if 0 <= index < len(jobs) else f"{len(jobs)} files"

        async def batches() -> AsyncIterator[tuple[int, FileBatch | None]]:
            while True:
                message = await ahead.get()
                kind = message[0]
                if kind == "batch":
                    _, index, rows, (frames, points, errors), position, end = message
                    current[0] = index
                    yield index, FileBatch(rows, frames, points, errors, position, tuple(end))
                elif kind == "end":
                    current[0] = message[1] + 1
                    yield message[1], None
                elif kind == "info":
                    on_info(message[1])
                elif kind == "changed":
                    if on_changed is not None:
                        on_changed(message[1])
                elif kind == "error":
                    raise ReaderFailed(message[1])
                elif kind == "done":
                    return
                else:  # the pipe ended before "done", or carried what is not a message
                    if proc.returncode is None and message[1]:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                    status = await proc.wait()
                    assert drain is not None
                    await drain
                    last = bytes(stderr).decode("utf-8", "replace").strip().splitlines()
                    why = f": {message[1] or (last[-1] if last else '')}".rstrip(": ")
                    raise ReaderFailed(
                        f"{named(current[0])}: the reader process stopped (exit status {status}){why}"
                    )

        yield batches()
    finally:
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        # Read the pipe to its end: a pipe left unread (its reading paused by a full buffer) is
        # never seen closed, and asyncio waits for that as well as the exit (a stop mid-batch
        # hung here on Ctrl-C). What is left of a killed reader's batch is dropped.
        with contextlib.suppress(Exception):
            while proc.stdout is not None and await proc.stdout.read(1 << 16):
                pass
        await proc.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


async def _keep_tail(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(_STDERR_KEEP):
        into += chunk
        del into[:-_STDERR_KEEP]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
