"""Frames from a file: read an old log to its end, or follow a live one like ``tail -F``.

``file:///var/log/rig.wits`` reads the file once and ends; ``?follow=1`` keeps reading what is
appended, survives truncation (``copytruncate``, ``> file``) and rotation (rename and create, as
logrotate does), and waits for a file that does not exist yet. Blocking file calls run in a worker
thread, one small read at a time, so the event loop never stalls and memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable
from enum import Enum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from witskit.errors import SourceFileError, UsageError
from witskit.protocol import FrameParser
from witskit.transport.base import Source, SourceEvent

__all__ = ["DEFAULT_FILE_CHUNK_SIZE", "DEFAULT_POLL_INTERVAL", "URL_OPTIONS", "FileSource"]

log = logging.getLogger("witskit.transport")

#: Bytes per read: a few thousand frames, so reading an old log costs few thread hops, while a
#: followed file (which grows by a frame a second) is read in one small call per poll.
DEFAULT_FILE_CHUNK_SIZE = 256 * 1024

#: How often a followed file at its end is checked for new data, truncation and rotation: rigs send
#: a frame every 1-10 s, so a quarter second adds no noticeable latency and costs nothing.
DEFAULT_POLL_INTERVAL = 0.25

#: How far back from the end ``start_at_end`` looks for the start of a frame being written.
_TAIL_LOOKBACK = 64 * 1024

#: Query keys of ``file://`` URLs.
URL_OPTIONS = ("follow", "poll", "from_end", "name")

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Change(Enum):
    NONE = "none"
    TRUNCATED = "truncated"
    ROTATED = "rotated"


class _OpenFile:
    """One open file and how far it has been read; the methods but :meth:`close` block (use a thread).

    A lock serialises the worker thread's calls with :meth:`close`, which the event loop calls
    (``aclose()``, a cancelled consumer) while a read may be in flight: closing a descriptor under a
    concurrent read could hand its number to another file. ``close`` never waits for the lock (a
    read from a FIFO may block for good); when a call holds it, that call closes the file on its way
    out.
    """

    def __init__(self, path: Path, *, at_end: bool) -> None:
        self._lock = threading.Lock()
        self._close_pending = False
        # Only regular files: opening a FIFO blocks until a writer comes, and reading a device
        # never ends, either of which would hold a worker thread (and interpreter exit) for good.
        if not stat.S_ISREG(path.stat().st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        self._fh = path.open("rb", buffering=0)  # unbuffered: pos below is exactly what was read
        try:
            st = os.fstat(self._fh.fileno())
            self.identity = (st.st_dev, st.st_ino)
            self.pos = _tail_start(self._fh, st.st_size) if at_end else 0
            self._fh.seek(self.pos)
        except BaseException:
            self._fh.close()
            raise

    def read(self, size: int) -> bytes:
        with self._lock:
            if self._fh.closed:
                return b""
            try:
                data = self._fh.read(size) or b""
            finally:
                if self._close_pending:
                    self._fh.close()
            self.pos += len(data)
            return data

    def check(self, path: Path) -> _Change:
        """At the end of the data: has the file shrunk, or does ``path`` name a new, non-empty file?

        A new file counts only once it has data: a writer that reopens its log after a rotation
        (logrotate's postrotate signal) stops writing the old file before it writes the new one,
        so when the new file has data, reading the old one to its end loses nothing. Until then the
        old file is still read (a missing path, mid-rotation, is waited for the same way).
        """
        with self._lock:
            if self._fh.closed:
                return _Change.NONE
            try:
                if os.fstat(self._fh.fileno()).st_size < self.pos:
                    return _Change.TRUNCATED
            finally:
                if self._close_pending:
                    self._fh.close()
        try:
            st = path.stat()
        except OSError:
            return _Change.NONE
        if (st.st_dev, st.st_ino) != self.identity and st.st_size > 0:
            return _Change.ROTATED
        return _Change.NONE

    def rewind(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self.pos = self._fh.seek(0)
                if self._close_pending:
                    self._fh.close()

    def close(self) -> None:
        """Close now, or have the call in flight close the file when it returns."""
        self._close_pending = True  # set before trying the lock: a holder checks it on release
        if self._lock.acquire(blocking=False):
            try:
                self._fh.close()
            finally:
                self._lock.release()


def _tail_start(fh: io.FileIO, size: int) -> int:
    """Where to start reading to get only new data: the end, or the ``&&`` of a frame cut by it.

    Starting exactly at the end would turn the rest of a frame being written into garbage.
    """
    back = min(size, _TAIL_LOOKBACK)
    fh.seek(size - back)
    tail = fh.read(back) or b""
    start = tail.rfind(b"&&")
    if start >= 0 and b"!!" not in tail[start:]:
        return size - len(tail) + start
    return size


class FileSource(Source):
    """A :class:`~witskit.transport.base.Source` reading WITS frames from a file.

    Without ``follow`` it reads ``path`` to its end and ends, after the parser's end-of-stream
    events (a partial last frame is a FrameError). A missing or unreadable file raises
    :class:`~witskit.errors.SourceFileError` naming the path.

    With ``follow=True`` it behaves like ``tail -F``: at the end it waits ``poll_interval`` seconds
    and reads again; a file that shrank was truncated, so its partial frame becomes a FrameError and
    reading restarts at its start; when ``path`` names a new file (rotation) with data in it, the
    old file is read to its end, then the new one from its start. A missing file is waited for.
    ``start_at_end`` skips what the file holds when the source starts (from the start of a frame
    still being written); a file that appears later is read whole. It requires ``follow``.

    Relative paths are resolved against the working directory when the source is created. Each file
    read gets a new :class:`~witskit.protocol.FrameParser` (``parser_options`` are its keyword
    arguments), so offsets and line numbers in events count from where reading of that file began.
    A FileSource is iterated once; ``aclose()`` ends the iteration promptly.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        follow: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        start_at_end: bool = False,
        chunk_size: int = DEFAULT_FILE_CHUNK_SIZE,
        parser_options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if not poll_interval > 0:
            raise UsageError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise UsageError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if start_at_end and not follow:
            raise UsageError("start_at_end without follow would read nothing; use follow=True")
        self.path = Path(path).absolute()  # not resolve(): a symlinked log path is followed by name
        self.follow = follow
        self.poll_interval = float(poll_interval)
        self.start_at_end = start_at_end
        self.chunk_size = chunk_size
        self.parser_options = parser_options or {}
        # Named by the file's name, as `witskit import` names what it reads: the same log read
        # either way lands in the same source, and the name does not change with the directory.
        self.name = name or self.path.name
        self.files_opened = 0
        self._closed = False
        self._started = False
        self._wake = asyncio.Event()
        self._file: _OpenFile | None = None
        self._open_error = ""  # the last reason the path could not be opened, logged once

    def __repr__(self) -> str:
        return f"<FileSource {self.name} ({self.path}){' follow' if self.follow else ''}>"

    @property
    def position(self) -> int:
        """Bytes of the current file read so far (0 when no file is open)."""
        return self._file.pos if self._file is not None else 0

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileSource:
        """A source from ``file:///abs/path`` or ``file://relative/path``, with query options.

        ``file:///var/log/rig.wits`` is absolute; ``file://logs/rig.wits`` and ``file:logs/rig.wits``
        are relative to the working directory (``file://localhost/abs`` is absolute, as in RFC 8089).
        Query: ``follow=0|1``, ``poll=SECONDS`` (the poll interval), ``from_end=0|1``, ``name=``
        (the source name; by default the file's name, ``rig.wits``). An unknown
        key, a key given twice or a bad value raises :class:`~witskit.errors.UsageError`; keyword
        ``options`` override the query, as in :func:`~witskit.transport.urls.open_source`.
        """
        from witskit.transport.options import URLOptions  # the query rules every scheme shares

        parts = urlsplit(url)
        if parts.scheme != "file":
            raise UsageError(f"{url!r} is not a file:// URL")
        if parts.fragment:
            raise UsageError(f"{url}: unexpected fragment '#{parts.fragment}' (write '#' as %23)")
        host = "" if parts.netloc == "localhost" else parts.netloc
        path = unquote(host + parts.path)
        if not path:
            raise UsageError(f"{url}: names no file")
        query = URLOptions(url, URL_OPTIONS)
        kwargs: dict[str, Any] = {}
        follow = query.flag("follow")
        if follow is not None:
            kwargs["follow"] = follow
        from_end = query.flag("from_end")
        if from_end is not None:
            kwargs["start_at_end"] = from_end
        name = query.text("name")
        if name is not None:
            kwargs["name"] = name
        poll = query.seconds("poll", zero_is_none=False)
        if poll is not None:
            kwargs["poll_interval"] = poll
        kwargs.update(options)
        return cls(path, **kwargs)

    # The loop ---------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[SourceEvent]:
        """Read, parse, yield; at the end either stop or (following) wait for more."""
        if self._started:
            raise UsageError(f"{self.name}: a FileSource is iterated once; create a new one")
        self._started = True
        parser = self._parser()
        first = True
        try:
            while not self._closed:
                current = self._file
                if current is None:
                    current = await self._open(at_end=first and self.start_at_end)
                    if current is None:  # not there (yet): following, so wait for it
                        await self._pause()
                        continue
                    first = False
                chunk = await self._call(current.read, self.chunk_size)
                if chunk:
                    for event in parser.feed(chunk):
                        yield event
                    continue
                if not self.follow:
                    break
                change = await self._call(current.check, self.path)
                if change is _Change.NONE:
                    await self._pause()
                    continue
                # The file is done for this parser: its partial frame, if any, is reported now.
                if change is _Change.ROTATED:
                    # Whatever reached the old file before the new one had data is still to read.
                    while not self._closed and (chunk := await self._call(current.read, self.chunk_size)):
                        for event in parser.feed(chunk):
                            yield event
                    self._drop_file()
                    log.info("%s: rotated; reading the new file from its start", self.path)
                else:
                    await self._call(current.rewind)
                    log.warning("%s: truncated; reading again from its start", self.path)
                for event in parser.close():
                    yield event
                parser = self._parser()
            for event in parser.close():
                yield event
        finally:
            self._drop_file()

    def _parser(self) -> FrameParser:
        return FrameParser(source=self.name, **self.parser_options)

    async def _open(self, *, at_end: bool) -> _OpenFile | None:
        """Open the path; None when following and it cannot be opened now (it is retried)."""
        try:
            opened = await _open_in_thread(self.path, at_end=at_end)
        except OSError as exc:
            reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc.strerror or exc)
            if not self.follow:
                raise SourceFileError(f"{self.path}: cannot read ({reason})") from exc
            # A log that does not exist yet, or is being rotated, is waited for quietly; anything
            # else (permissions set after creation, a directory) is retried too, as tail -F does,
            # since the writer or an operator may fix it. Each new reason is logged once.
            if reason != self._open_error:
                level = logging.DEBUG if isinstance(exc, FileNotFoundError) else logging.WARNING
                log.log(
                    level, "%s: cannot open (%s); retrying every %s s", self.path, reason, self.poll_interval
                )
                self._open_error = reason
            return None
        self._open_error = ""
        if self._closed:  # aclose() came while opening
            opened.close()
            return None
        self._file = opened
        self.files_opened += 1
        return opened

    async def _call(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run a blocking call on the open file in a worker thread; OS errors name the path."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except OSError as exc:
            raise SourceFileError(f"{self.path}: read failed ({exc.strerror or exc})") from exc

    async def _pause(self) -> None:
        """Sleep one poll interval, or less if aclose() is called."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval):
                await self._wake.wait()

    def _drop_file(self) -> None:
        current, self._file = self._file, None
        if current is not None:
            current.close()

    async def aclose(self) -> None:
        """Stop reading and following; the event stream then ends. Idempotent."""
        self._closed = True
        self._wake.set()
        # Safe, and does not block, while a read is in flight in the worker thread (_OpenFile.close).
        self._drop_file()


async def _open_in_thread(path: Path, *, at_end: bool) -> _OpenFile:
    """Open in a worker thread; if the caller is cancelled meanwhile, close what it opened."""
    future = asyncio.get_running_loop().run_in_executor(None, lambda: _OpenFile(path, at_end=at_end))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_orphan)
        raise


def _close_orphan(future: asyncio.Future[_OpenFile]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
