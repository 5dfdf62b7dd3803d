"""Where decoded frames go: a SQL store, JSON Lines or CSV files, or memory (for tests and embedding).

A sink has ``write(batch, upto=seq)`` and ``aclose()``. ``write`` returns only when the batch is
durable in the sink; the pipeline then acknowledges the spool up to ``upto``. Sinks must tolerate a
batch being written again after a crash (the spool replays what was not acknowledged):

* the SQL sink is idempotent by key (``INSERT ... ON CONFLICT DO NOTHING``);
* file sinks record, after each durable append, the spool sequence and the file length in a small
  side file; on start they cut the file back to that length and ask to resume after that sequence,
  so a batch is never in the file twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from witskit.errors import UsageError
from witskit.pipeline.base import LiveSink, Sink
from witskit.protocol import DecodedFrame
from witskit.storage.formats import CSV_COLUMNS, frame_csv_rows
from witskit.transport.options import URLOptions

__all__ = ["CSVSink", "JSONLSink", "LiveSink", "MemorySink", "SQLSink", "Sink", "open_sink"]


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


#: The relay's schemes (witskit.pipeline.relay), named here so that checking a URL imports nothing.
_RELAY_SCHEMES = ("wits-serve", "wits-serve+tls", "wits-push", "wits-push+tls", "serial")


def sink_kind(url: str) -> str:
    """``jsonl``, ``csv``, ``memory``, ``sql``, ``relay``, ``mqtt`` or ``nats`` for a sink URL;
    :class:`UsageError` when it is none.

    Checks the URL only, its options included (nothing is created), so a pipeline file can be
    checked whole before start.
    """
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    if scheme in _URL_OPTIONS:
        _file_or_memory(url, scheme)
        return scheme
    if scheme in _RELAY_SCHEMES:
        from witskit.pipeline.relay import check_relay_url

        check_relay_url(url)
        return "relay"
    if scheme in ("mqtt", "mqtts"):
        from witskit.pipeline.mqtt import check_mqtt_url

        check_mqtt_url(url)
        return "mqtt"
    if scheme.split("+")[0] in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        from witskit.storage.database import check_url

        # A malformed URL, or a SQLite file whose directory does not exist, cannot get better by
        # retrying: refuse it before the start rather than spool for a sink that never opens.
        check_url(url)
        return "sql"
    from witskit.transport.jetstream import is_nats_url, parse_target

    if is_nats_url(url):
        parse_target(url, role="edge")
        return "nats"
    raise UsageError(
        f"{url!r}: unknown sink; use a database URL (sqlite://, postgresql://, mysql://), jsonl://, csv://, "
        "a WITS relay (wits-serve://, wits-push://, serial://), mqtt:// or nats:// (a JetStream stream)"
    )


def open_sink(url: str, **options: Any) -> Sink:
    """A sink for a URL: a database URL, ``jsonl://path``, ``csv://path``, ``memory://``, a WITS relay
    (``wits-serve://``, ``wits-push://``, ``serial://``, see :mod:`witskit.pipeline.relay`) or an
    MQTT broker (``mqtt://``, ``mqtts://``, see :mod:`witskit.pipeline.mqtt`) or a JetStream stream
    (``nats://host:port/prefix?stream=NAME``, see :mod:`witskit.pipeline.jetstream`).

    ``jsonl://`` and ``csv://`` take ``fsync=0|1`` (default 1: each batch is synced to disk before
    the spool lets go of it). An unknown option, one given twice or a bad value is a
    :class:`~witskit.errors.UsageError`. Keyword ``options`` override the query.
    """
    kind = sink_kind(url)
    if kind == "sql":
        return SQLSink(url, **options)
    if kind == "relay":
        from witskit.pipeline.relay import RelaySink

        return RelaySink(url, **options)
    if kind == "mqtt":
        from witskit.pipeline.mqtt import MQTTSink

        return MQTTSink(url, **options)
    if kind == "nats":
        from witskit.pipeline.jetstream import JetStreamSink

        if options:
            raise UsageError(f"{url}: a nats:// sink takes its options in the URL, not {sorted(options)}")
        return JetStreamSink(url)
    where, kwargs = _file_or_memory(url, kind)
    if kind == "memory":
        return MemorySink(where or "memory")
    kwargs.update(options)
    return JSONLSink(where, **kwargs) if kind == "jsonl" else CSVSink(where, **kwargs)
