"""Where decoded frames go: a SQL store, JSON Lines or CSV files, or memory (for tests and embedding).

A sink has ``write(batch, upto=seq)`` and ``aclose()``. ``write`` returns only when the batch is
durable in the sink; the pipeline then acknowledges the spool up to ``upto``. Sinks must tolerate a
batch being written again after a crash (the spool replays what was not acknowledged):

* the SQL sink is idempotent by key (``INSERT ... ON CONFLICT DO NOTHING``);
* file sinks record, after each durable append, the spool sequence and the file length in a small
  side file; on start they cut the file back to that length and ask to resume after that sequence,
  so a batch is never in the file twice;
* the JetStream sink (a fleet's edge, ``nats://``) publishes with a message id made of the edge
  and the spool sequence, which the stream de-duplicates (see :class:`JetStreamSink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from witskit.errors import UsageError, WitsKitError
from witskit.pipeline.envelope import encode_envelope
from witskit.protocol import DecodedFrame
from witskit.storage.formats import CSV_COLUMNS, frame_csv_rows
from witskit.transport.jetstream import (
    BrokerError,
    JetStreamTarget,
    connect,
    ensure_stream,
    parse_target,
    subject_token,
)
from witskit.transport.options import URLOptions

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = [
    "CSVSink",
    "EdgeStats",
    "JSONLSink",
    "JetStreamSink",
    "MemorySink",
    "SQLSink",
    "Sink",
    "open_sink",
]


class Sink(ABC):
    """A destination for decoded frames."""

    name: str

    def resume_after(self) -> int:
        """The last spool sequence this sink already holds durably (0: none known)."""
        return 0

    @abstractmethod
    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Store ``batch`` durably; ``upto`` is the spool sequence of its last frame."""

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        """:meth:`write`, told each frame's spool sequence (``sequences[i]`` is ``batch[i]``'s).

        The pipeline calls this one. A sink that names what it writes by spool sequence (the
        JetStream sink's message ids) overrides it; the others only need :meth:`write`.
        """
        await self.write(batch, upto=upto)

    async def aclose(self) -> None:  # noqa: B027 - most sinks have nothing to release
        """Release resources."""


class MemorySink(Sink):
    """Keeps every frame in a list (tests, notebooks). ``fail`` makes writes raise, to test outages."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.frames: list[DecodedFrame] = []
        self.fail: BaseException | None = None
        self.writes = 0

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Append the batch (or raise ``fail``)."""
        if self.fail is not None:
            raise self.fail
        self.writes += 1
        self.frames.extend(batch)


class SQLSink(Sink):
    """Writes to a :class:`witskit.storage.Store` (SQLite, PostgreSQL, MariaDB): idempotent by key."""

    def __init__(self, url: str, **options: Any) -> None:
        from witskit.storage.secure_connection import sanitize_url

        self.url = url
        self.name = sanitize_url(url)
        self._options = options
        self._store: Any = None

    async def _get_store(self) -> Any:
        if self._store is None:
            from witskit.storage.store import Store

            self._store = await Store.open(self.url, **self._options)
        return self._store

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """One transaction per batch; committed before returning."""
        store = await self._get_store()
        await store.write(batch)

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self._store is not None:
            await self._store.aclose()
            self._store = None


class _FileSink(Sink):
    """Append-only text file with a position side file for exactly-once appends across crashes."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.fsync = fsync
        self._pos_path = self.path.with_name(self.path.name + ".pos")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._resume = 0
        length = 0
        if self._pos_path.exists():
            try:
                seq_text, length_text = self._pos_path.read_text().split()
                self._resume, length = int(seq_text), int(length_text)
            except ValueError:
                raise UsageError(
                    f"{self._pos_path}: unreadable position file; delete it to start over"
                ) from None
        if self.path.exists() and self.path.stat().st_size > length:
            # Appended but never acknowledged: the spool will replay it, so cut it off.
            with self.path.open("r+b") as fh:
                fh.truncate(length)
        self._fh = self.path.open("ab")
        self._header_written = self._fh.tell() > 0

    def resume_after(self) -> int:
        """The last spool sequence already in the file."""
        return self._resume

    @abstractmethod
    def _render(self, batch: Sequence[DecodedFrame]) -> bytes: ...

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Append, flush (fsync), then record the new position."""
        data = self._render(batch)
        await asyncio.to_thread(self._append, data, upto)

    def _append(self, data: bytes, upto: int) -> None:
        self._fh.write(data)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        tmp = self._pos_path.with_name(self._pos_path.name + ".tmp")
        tmp.write_text(f"{upto} {self._fh.tell()}\n")
        os.replace(tmp, self._pos_path)
        self._resume = upto

    async def aclose(self) -> None:
        """Close the file."""
        self._fh.close()


class JSONLSink(_FileSink):
    """One JSON object per frame (``DecodedFrame.to_record()``)."""

    def _render(self, batch: Sequence[DecodedFrame]) -> bytes:
        dumps = json.dumps
        return "".join(dumps(f.to_record(), separators=(",", ":")) + "\n" for f in batch).encode()


class CSVSink(_FileSink):
    """One row per point, in WitsKit's one CSV layout: time, source, code, mnemonic, value, text, unit."""

    HEADER = CSV_COLUMNS

    def _render(self, batch: Sequence[DecodedFrame]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not self._header_written:
            writer.writerow(self.HEADER)
            self._header_written = True
        for frame in batch:
            writer.writerows(frame_csv_rows(frame))
        return out.getvalue().encode()


#: Query keys of the file and memory sink URLs (database URLs have their own, see witskit.storage).
_URL_OPTIONS: dict[str, tuple[str, ...]] = {"jsonl": ("fsync",), "csv": ("fsync",), "memory": ()}


def _file_or_memory(url: str, scheme: str) -> tuple[str, dict[str, Any]]:
    """(path, or memory sink name; options from the query) of a ``jsonl``/``csv``/``memory`` URL.

    The path is percent-decoded as in ``file://``; the query follows the rules every URL option
    follows (:class:`~witskit.transport.options.URLOptions`).
    """
    query = URLOptions(url, _URL_OPTIONS[scheme])
    parts = urlsplit(url)
    if parts.fragment:
        raise UsageError(f"{query.url}: unexpected fragment '#{parts.fragment}' (write '#' as %23)")
    where = unquote(parts.netloc + parts.path)
    if scheme != "memory" and not where:
        raise UsageError(f"{query.url}: a {scheme} sink needs a path, e.g. {scheme}://out/rig.{scheme}")
    fsync = query.flag("fsync")
    return where, {} if fsync is None else {"fsync": fsync}


def sink_kind(url: str) -> str:
    """``jsonl``, ``csv``, ``memory``, ``sql`` or ``nats`` for a sink URL; :class:`UsageError` if none.

    Checks the URL only, its options included (nothing is created), so a pipeline file can be
    checked whole before start.
    """
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    if scheme in _URL_OPTIONS:
        _file_or_memory(url, scheme)
        return scheme
    if scheme.split("+")[0] in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        from witskit.storage.database import check_url

        # A malformed URL, or a SQLite file whose directory does not exist, cannot get better by
        # retrying: refuse it before the start rather than spool for a sink that never opens.
        check_url(url)
        return "sql"
    from witskit.transport.jetstream import is_nats_url

    if is_nats_url(url):
        parse_target(url, role="edge")
        return "nats"
    raise UsageError(
        f"{url!r}: unknown sink; use a database URL (sqlite://, postgresql://, mysql://), jsonl://, "
        "csv:// or nats:// (a JetStream stream)"
    )


def open_sink(url: str, **options: Any) -> Sink:
    """A sink for a URL: a database URL, ``jsonl://path``, ``csv://path``, ``memory://`` or a
    JetStream stream (``nats://host:port/prefix?stream=NAME``, :mod:`witskit.transport.jetstream`).

    ``jsonl://`` and ``csv://`` take ``fsync=0|1`` (default 1: each batch is synced to disk before
    the spool lets go of it). An unknown option, one given twice or a bad value is a
    :class:`~witskit.errors.UsageError`. Keyword ``options`` override the query.
    """
    kind = sink_kind(url)
    if kind == "sql":
        return SQLSink(url, **options)
    if kind == "nats":
        if options:
            raise UsageError(f"{url}: a nats:// sink takes its options in the URL, not {sorted(options)}")
        return JetStreamSink(url)
    where, kwargs = _file_or_memory(url, kind)
    if kind == "memory":
        return MemorySink(where or "memory")
    kwargs.update(options)
    return JSONLSink(where, **kwargs) if kind == "jsonl" else CSVSink(where, **kwargs)


@dataclass
class EdgeStats:
    """What an edge's JetStream sink did (for metrics; "pending" is the pipeline's backlog)."""

    published: int = 0
    acked: int = 0
    #: PubAcks that said "duplicate": a re-publish the stream dropped (after a lost ack or a crash).
    duplicates: int = 0
    failed_batches: int = 0
    connected: bool = False
    #: Monotonic time of the last PubAck (None: none yet), for /readyz.
    last_ack: float | None = None
    #: Monotonic time since which the cluster has not acknowledged (None: it does).
    failing_since: float | None = None
    last_error: str | None = None
    subjects: dict[str, str] = field(default_factory=dict)


class JetStreamSink(Sink):
    """A fleet's edge: every frame published to a JetStream stream, done when every PubAck is in.

    ``nats://host:port[,host:port...]/<prefix>?stream=NAME`` (options: ``witskit.transport.jetstream``).
    The pipeline gives each batch with every frame's spool sequence (:meth:`write_sequenced`) and
    acknowledges the spool only when it returns, which it does only once JetStream has
    acknowledged every message of the batch. A batch that fails (a node down, the cluster
    unreachable, the stream full) raises; the pipeline's breaker waits and the same batch is
    published again, oldest first, with the same message ids (``witskit.pipeline.envelope``).

    Backlog and live data: the pipeline's writer reads the spool oldest first, ``batch_max``
    frames a batch, and this sink publishes a whole batch pipelined (every message sent, then
    every PubAck awaited), so a backlog drains at the cluster's throughput, not one round trip per
    frame. Live frames are appended behind it and go in the batch after the backlog's end: they
    are delayed by the backlog's drain time (measured in ``bench/bench_fleet.py``), never dropped
    or overtaken, so the stream holds each rig's frames in receive order.
    """

    def __init__(self, url: str) -> None:
        target = parse_target(url, role="edge")
        self.target: JetStreamTarget = target
        self.name = target.url
        self.edge = target.edge or "edge"
        self.stats = EdgeStats()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._subjects: dict[str | None, str] = {}
        self._closing = False
        self._said: str | None = None  # the cluster's last asynchronous error (a refused publish)

    def _async_error(self, text: str) -> None:
        self._said = text

    def __repr__(self) -> str:
        return f"<JetStreamSink {self.target.url} edge={self.edge}>"

    def _subject(self, source: str | None) -> str:
        subject = self._subjects.get(source)
        if subject is None:
            subject = self._subjects[source] = f"{self.target.subject}.{subject_token(source or 'default')}"
        return subject

    async def _context(self) -> JetStreamContext:
        if self._nc is None or self._nc.is_closed:
            # Bounded: nats-py retries the first connection as long as it is told to reconnect.
            try:
                async with asyncio.timeout(self.target.timeout * 2):
                    self._nc = await connect(
                        self.target,
                        name=f"witskit-edge {self.edge}",
                        on_error=self._async_error,
                        closing=lambda: self._closing,
                    )
            except TimeoutError:
                raise BrokerError(f"{self.target.url}: no NATS server answered") from None
            self._js = self._nc.jetstream(timeout=self.target.timeout)
            self._stream_ready = False
        assert self._js is not None
        if not self._stream_ready:
            await ensure_stream(self._js, self.target)
            self._stream_ready = True
        self.stats.connected = self._nc.is_connected
        return self._js

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Publish ``batch`` as spool records ``upto - len(batch) + 1`` .. ``upto`` (consecutive).

        The pipeline calls :meth:`write_sequenced`, which knows each frame's sequence.
        """
        await self.write_sequenced(batch, range(upto - len(batch) + 1, upto + 1), upto=upto)

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        """Publish every frame, then wait (``timeout``) for every PubAck; raise unless all came."""
        try:
            await self._publish(batch, sequences)
        except Exception as exc:
            now = time.monotonic()
            self.stats.failed_batches += 1
            self.stats.failing_since = self.stats.failing_since or now
            self.stats.last_error = str(exc)
            self.stats.connected = bool(self._nc is not None and self._nc.is_connected)
            if isinstance(exc, WitsKitError):
                raise
            raise BrokerError(f"{self.target.url}: {type(exc).__name__}: {exc}") from exc
        self.stats.failing_since = None
        self.stats.last_ack = time.monotonic()

    async def _publish(self, batch: Sequence[DecodedFrame], sequences: Sequence[int]) -> None:
        js = await self._context()
        target = self.target
        futures: list[asyncio.Future[Any]] = []
        self._said = None
        try:
            for frame, seq in zip(batch, sequences, strict=True):
                headers, body = encode_envelope(frame.frame, edge=self.edge, sequence=seq)
                future = await js.publish_async(
                    self._subject(frame.source),
                    body,
                    wait_stall=target.timeout,
                    stream=target.stream,
                    headers=headers,
                )
                futures.append(future)
                self.stats.published += 1
            if futures:
                _, pending = await asyncio.wait(futures, timeout=target.timeout)
                if pending:
                    said = f" (the cluster said: {self._said})" if self._said else ""
                    raise BrokerError(
                        f"{target.url}: {len(pending)} of {len(futures)} messages not acknowledged "
                        f"within {target.timeout:g} s{said}"
                    )
        finally:
            for future in futures:
                future.cancel()  # no-op when done; releases nats-py's slot when not
        duplicates = 0
        for future in futures:
            exc = future.exception()
            if exc is not None:
                raise BrokerError(f"{target.url}: the stream refused a message: {exc}") from exc
            ack = future.result()
            if ack.stream != target.stream:  # Nats-Expected-Stream makes the server refuse this
                raise BrokerError(f"{target.url}: acknowledged by stream {ack.stream}, not {target.stream}")
            duplicates += bool(ack.duplicate)
        self.stats.acked += len(futures)
        self.stats.duplicates += duplicates

    async def aclose(self) -> None:
        """Close the connection (pending publishes were awaited by the write that made them)."""
        nc, self._nc = self._nc, None
        self._closing = True
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self.stats.connected = False
