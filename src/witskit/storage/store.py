"""The SQL store: one async interface over SQLite, PostgreSQL and MariaDB/MySQL.

>>> store = await Store.open("sqlite:///wits.db")          # doctest: +SKIP
>>> await store.write(decoded_frames)                      # doctest: +SKIP
600
>>> async for row in store.query(codes=["DBTM"], start="2026-01-01T06:00"):  # doctest: +SKIP
...     print(row.time, row.value)
>>> await store.aclose()                                   # doctest: +SKIP

The backend is picked by the URL scheme (``sqlite:///path.db``, ``postgresql://``, ``mysql://`` or
``mariadb://``). Writes are idempotent by frame: each frame's key (:func:`~witskit.storage.schema.frame_key`)
is looked up first, frames already stored are skipped with their points, and only new frames are
inserted, all in one transaction per :meth:`Store.write` call that is committed before it returns.
The pipeline acknowledges its spool only after that, so a crash between the two replays frames
that the store then skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from witskit.errors import UsageError
from witskit.protocol.decoder import DecodedFrame, Value
from witskit.storage._backends import backend_for
from witskit.storage._base import BackendImpl, Pending, ScanFilter, WriteRace
from witskit.storage._translate import translate
from witskit.storage._url import SecretLike, parse_url
from witskit.storage.archive import Archive
from witskit.storage.blocks import CompactedDay, plan_compaction
from witskit.storage.blocks import compact as _compact
from witskit.storage.errors import DatabaseNotFound, DatabaseUnavailable
from witskit.storage.imports import ImportMark
from witskit.storage.migrations import check_schema
from witskit.storage.migrations import migrate as _migrate
from witskit.storage.prepare import PreparedFrame, _key, _key_material, from_micros, prepare_rows
from witskit.storage.query import (
    DEFAULT_BATCH_SIZE,
    DataFrame,
    PointRow,
    PointScan,
    RawPoint,
    RowMaker,
    SourceInfo,
    TimeBound,
    distinct_codes,
    frame_from_batches,
    integer_codes,
    parse_time,
    resolve_codes,
    sources_filter,
    stored_value,
)
from witskit.storage.retention import (
    LOCK_TIMEOUT,
    Archived,
    RetentionPolicy,
    RetentionReport,
    apply_retention,
    ensure_ahead,
    plan_retention,
)
from witskit.storage.schema import (
    DEFAULT_SOURCE,
    UTCDateTime,
    import_progress,
    points,
    sources,
    to_micros,
)
from witskit.storage.schema import frames as frames_table
from witskit.storage.series import DEFAULT_POINTS, Series, downsample
from witskit.storage.tiers import (
    archive_codes,
    archive_scan,
    archive_series,
    listed,
    merge_scans,
    merge_series,
)

__all__ = ["Store"]

logger = logging.getLogger("witskit.storage")

#: A write that loses a race to a concurrent writer (MySQL duplicate key) is retried this often.
_WRITE_ATTEMPTS: Final = 3
#: Default connection pool size (connections kept open per store).
DEFAULT_POOL_SIZE: Final = 5
#: Default seconds to wait for a connection, the pool or a lock.
DEFAULT_TIMEOUT: Final = 30.0


#: PostgreSQL (revision 0009): the points of a code's newest time, from the newest row or the newest
#: hourly block (two key probes, then one block read), never every block of the code.
_LATEST_PG: Final = text(
    """
    WITH newest AS (
        SELECT GREATEST(
            (SELECT max(time) FROM points WHERE source_id = :sid AND code = :code),
            (SELECT max(t) FROM point_blocks b CROSS JOIN LATERAL unnest(b.times) AS t
                WHERE b.source_id = :sid AND b.code = :code AND b.hour =
                    (SELECT max(hour) FROM point_blocks WHERE source_id = :sid AND code = :code))
        ) AS t
    )
    SELECT p.time, p.value_num, p.value_text, p.frame_key, p.idx FROM points_all p, newest n
    WHERE p.source_id = :sid AND p.code = :code AND p.time = n.t
        AND p.span_start > n.t - INTERVAL '1 hour' AND p.span_start <= n.t
    ORDER BY p.frame_key DESC, p.idx DESC
    """
).columns(time=UTCDateTime())


def _prepare(frames: Sequence[DecodedFrame], default_source: str) -> dict[str, list[Pending]]:
    """Frames grouped by source name (in order), with their keys and storage values."""
    return {name: _pending(name, rows) for name, rows in prepare_rows(frames, default_source).items()}


def _pending(source: str, rows: Iterable[PreparedFrame]) -> list[Pending]:
    """One source's prepared frames as the backends write them."""
    return [
        Pending(source, key, from_micros(t_us), t_us, from_micros(recv_us), raw, errors, codes, values)
        for key, t_us, recv_us, raw, errors, codes, values in rows
    ]


class Store:
    """A SQL store of decoded WITS frames (SQLite, PostgreSQL or MariaDB/MySQL).

    Open with :meth:`open`; close with :meth:`aclose` (or ``async with store:``). A store belongs
    to the event loop it was opened in. It is safe to call from several tasks at once: each call
    takes a pooled connection, and SQLite writes are serialised (one writer at a time).
    """

    def __init__(
        self, engine: AsyncEngine, backend: BackendImpl, *, default_source: str = DEFAULT_SOURCE
    ) -> None:
        """Use :meth:`open`."""
        self._engine = engine
        self._backend = backend
        self._default_source = default_source
        self._source_ids: dict[str, int] = {}
        self._write_lock = asyncio.Lock() if backend.single_writer else None
        self._closed = False
        self._archive: Archive | None = None

    # Opening and closing -------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str | SecretLike,
        *,
        migrate: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        default_source: str = DEFAULT_SOURCE,
        must_exist: bool = False,
    ) -> Store:
        """Connect to the database at ``url`` and make sure its schema is current.

        ``migrate=True`` upgrades the schema if needed (safe with concurrent starts); with
        ``migrate=False`` an old or missing schema raises
        :class:`~witskit.storage.errors.SchemaMismatch`. ``pool_size`` connections are kept open;
        ``timeout`` (seconds) bounds connecting, waiting for the pool and (SQLite) waiting for the
        write lock. ``default_source`` names frames whose ``source`` is None. ``must_exist`` makes a
        missing SQLite file an error instead of creating it. Raises
        :class:`~witskit.storage.errors.StorageError` subclasses whose messages carry the URL with
        its password masked.
        """
        parsed = parse_url(url)
        if pool_size < 1:
            raise UsageError(f"pool_size must be at least 1, got {pool_size}")
        if not timeout > 0:
            raise UsageError(f"timeout must be positive, got {timeout}")
        if must_exist and parsed.sqlite_path is not None and not parsed.sqlite_path.is_file():
            raise DatabaseNotFound(f"no SQLite database at {parsed.display}", url=parsed.display)
        backend = backend_for(parsed)
        engine = backend.create_engine(pool_size=pool_size, timeout=timeout)
        try:
            if migrate:
                await _migrate(engine, backend)
            else:
                await check_schema(engine, backend)
        except BaseException:
            await engine.dispose()
            raise
        logger.info("storage: opened %s (%s, pool of %d)", parsed.display, backend.name, pool_size)
        return cls(engine, backend, default_source=default_source)

    @classmethod
    def unopened(
        cls,
        url: str | SecretLike,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        default_source: str = DEFAULT_SOURCE,
    ) -> Store:
        """A store whose database is not reached yet: nothing connects until it is used.

        For a process that must start while its database is down (``witskit run``): calls raise
        :class:`~witskit.storage.errors.DatabaseUnavailable` until the server answers; call
        :meth:`migrate` (retrying) before relying on the schema.
        """
        parsed = parse_url(url)
        if pool_size < 1:
            raise UsageError(f"pool_size must be at least 1, got {pool_size}")
        if not timeout > 0:
            raise UsageError(f"timeout must be positive, got {timeout}")
        backend = backend_for(parsed)
        engine = backend.create_engine(pool_size=pool_size, timeout=timeout)
        return cls(engine, backend, default_source=default_source)

    async def migrate(self) -> None:
        """Upgrade the schema if needed, as :meth:`open` does with ``migrate=True``."""
        self._check_open()
        await _migrate(self._engine, self._backend)
        logger.info("storage: opened %s (%s)", self._backend.url.display, self._backend.name)

    async def aclose(self) -> None:
        """Close every pooled connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Store {self._backend.url.display} ({self._backend.name})>"

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return self._backend.url.display

    @property
    def backend(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included)."""
        return self._backend.name

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the store {self.url} is closed")

    # The archive tier ------------------------------------------------------------------------------
    def attach_archive(self, archive: Archive | str | None) -> None:
        """Read the Parquet archive at ``archive`` (an :class:`~witskit.storage.archive.Archive`, a
        directory or a URI) together with the database: :meth:`scan`, :meth:`query` and
        :meth:`series` then see one history over both tiers (None detaches it)."""
        self._archive = Archive(archive) if isinstance(archive, str) else archive

    @property
    def archive(self) -> Archive | None:
        """The attached archive, if any."""
        return self._archive

    # Writing -------------------------------------------------------------------------------------
    async def write(self, frames: Sequence[DecodedFrame]) -> int:
        """Store frames and their points; return the number of points inserted.

        Idempotent: frames already stored (same source, frame time and bytes) are skipped, so
        writing the same frames twice inserts nothing the second time. One transaction per call,
        committed before this returns: when it returns, the frames are durable (see the backend
        notes in ``docs/storage.md``) and the spool may drop them. On error nothing of the call is
        stored, and a :class:`~witskit.storage.errors.StorageError` says whether retrying can help
        (``transient``).
        """
        self._check_open()
        if not frames:
            return 0
        return await self._write_groups(_prepare(frames, self._default_source))

    async def write_prepared(self, source: str, frames: Sequence[PreparedFrame]) -> int:
        """:meth:`write` for frames of one ``source`` prepared by
        :func:`witskit.storage.prepare.prepare_rows`, perhaps in another process.

        What ``witskit import`` calls: its reader process decodes the file and computes the keys,
        so this process only writes. The same guarantees as :meth:`write`.
        """
        self._check_open()
        if "\x00" in source:
            raise UsageError(f"source name {source!r} contains a NUL character")
        if not frames:
            return 0
        return await self._write_groups({source: _pending(source, frames)})

    async def _write_groups(self, groups: dict[str, list[Pending]]) -> int:
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                if self._write_lock is None:
                    return await self._write_once(groups, contended=attempt > 1)
                async with self._write_lock:
                    return await self._write_once(groups, contended=attempt > 1)
            except WriteRace:
                logger.info("storage: a concurrent writer stored the same frames first (attempt %d)", attempt)
        raise DatabaseUnavailable(
            f"could not write to {self.url}: lost {_WRITE_ATTEMPTS} races to concurrent writers", url=self.url
        )

    async def _write_once(self, groups: dict[str, list[Pending]], *, contended: bool = False) -> int:
        backend = self._backend
        with translate(backend, "write to"):
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                drv = raw.driver_connection
                await backend.setup(drv, raw.info)
                await backend.begin(drv)
                try:
                    ids = await self._ensure_sources(drv, list(groups))
                    chosen = await self._new_frames(
                        {ids[name]: pending for name, pending in groups.items()}, drv
                    )
                    results = await backend.insert_many(
                        drv, {s: n for s, n in chosen.items() if n}, raw.info, contended=contended
                    )
                    bumps = [
                        (sid, len(ins), count, min(p.time for p in ins), max(p.time for p in ins))
                        for sid, ins, count in results
                        if ins
                    ]
                    if bumps:
                        await backend.bump_sources(drv, bumps)
                    total = sum(count for _, _, count in results)
                    await backend.commit(drv)
                except BaseException:
                    await self._abandon(conn, drv)
                    raise
        # Only now: an id from a rolled-back transaction must never be reused.
        self._source_ids.update(ids)
        return total

    async def _abandon(self, conn: AsyncConnection, drv: Any) -> None:
        """Roll back; a connection that cannot even do that is dropped from the pool."""
        try:
            await self._backend.rollback(drv)
        except BaseException:
            with contextlib.suppress(BaseException):
                await conn.invalidate()

    async def _ensure_sources(self, drv: Any, names: list[str]) -> dict[str, int]:
        ids = {n: self._source_ids[n] for n in names if n in self._source_ids}
        missing = [n for n in names if n not in ids]
        if missing:
            ids.update(await self._backend.ensure_sources(drv, missing, datetime.now(UTC)))
        return ids

    async def _new_frames(self, groups: dict[int, list[Pending]], drv: Any) -> dict[int, list[Pending]]:
        """Per source, the frames of ``groups`` not stored yet, each with a key no other frame holds.

        A key that is stored (or taken earlier in the batch) with the same frame time and bytes is
        a replay: skipped. With different content it is a 64-bit hash collision (about one in 10^19
        per pair of frames): the frame moves to its next probe key and is checked again, so it is
        stored rather than mistaken for a replay, and a replay of it finds the same probe key. One
        lookup covers every source of the batch (a fleet behind one listener writes many).
        """
        chosen: dict[int, dict[int, Pending]] = {sid: {} for sid in groups}
        todo = {sid: pending for sid, pending in groups.items() if pending}
        while todo:
            stored_by_source = await self._backend.existing_many(
                drv,
                {sid: list({p.key for p in pending}) for sid, pending in todo.items()},
                {
                    sid: (min(p.time_us for p in pending), max(p.time_us for p in pending))
                    for sid, pending in todo.items()
                },
            )
            retry: dict[int, list[Pending]] = {}
            for sid, pending in todo.items():
                stored = stored_by_source.get(sid, {})
                mine_by_key = chosen[sid]
                for p in pending:
                    other = stored.get(p.key)
                    if other is None:
                        mine = mine_by_key.get(p.key)
                        if mine is None:
                            mine_by_key[p.key] = p
                            continue
                        other = mine.identity
                    if other == p.identity:
                        continue
                    p.probe += 1
                    logger.warning(
                        "storage: frame key collision in source %r at %s (probe %d): storing under the "
                        "next key",
                        p.source,
                        p.time.isoformat(),
                        p.probe,
                    )
                    p.key = _key(_key_material(p.source, p.time, p.raw), p.probe)
                    retry.setdefault(sid, []).append(p)
            todo = retry
        return {sid: list(by_key.values()) for sid, by_key in chosen.items()}

    # Reading -------------------------------------------------------------------------------------
    def query(
        self,
        source: str | Iterable[str] | None = None,
        codes: str | Iterable[str] | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> AsyncGenerator[PointRow, None]:
        """Stream stored points in time order, ``batch_size`` rows per round trip.

        ``source``: a name or names (None: all). ``codes``: 4-digit codes and/or mnemonics, mixed
        (``["0108", "ROPA"]``; None: all). ``start`` is inclusive, ``end`` exclusive; datetimes
        (naive = UTC) or ISO strings. A server-side cursor streams the rows: memory stays at one
        batch whatever the result size. Use ``contextlib.aclosing`` to stop early and release the
        connection at once.
        """
        return self._rows(self.query_batches(source, codes, start, end, batch_size))

    @staticmethod
    async def _rows(batches: AsyncGenerator[list[PointRow], None]) -> AsyncGenerator[PointRow, None]:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for row in batch:
                    yield row

    async def query_batches(
        self,
        source: str | Iterable[str] | None = None,
        codes: str | Iterable[str] | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> AsyncGenerator[list[PointRow], None]:
        """:meth:`query`, one list per round trip (cheaper per row for bulk exports)."""
        scan = await self.scan(source, codes, start, end, batch_size)
        make = RowMaker(scan.names)
        async with contextlib.aclosing(scan):
            async for batch in scan:
                yield make(batch)

    async def scan(
        self,
        source: str | Iterable[str] | None = None,
        codes: str | Iterable[str] | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> PointScan:
        """:meth:`query` as raw tuples: the fast path for exports (see :class:`PointScan`).

        Arguments are checked and source names read now; the points are read as the scan is
        iterated, on one connection held until it ends or is closed.
        """
        self._check_open()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        names = sources_filter(source)
        wanted = resolve_codes(codes) if codes is not None else None
        lo = parse_time(start, "start")
        hi = parse_time(end, "end")
        with translate(self._backend, "query"):
            async with self._engine.connect() as conn:
                id_to_name = await self._source_names(conn)
        ids: list[int] | None = None
        if names is not None:
            by_name = {n: i for i, n in id_to_name.items()}
            ids = [by_name[n] for n in names if n in by_name]
        where = ScanFilter(
            ids, wanted, None if lo is None else to_micros(lo), None if hi is None else to_micros(hi)
        )
        if self._archive is None:
            return PointScan(self._scan(where, batch_size), id_to_name)
        # Both tiers: archived sources that the database no longer names get ids of their own.
        by_name = {n: i for i, n in id_to_name.items()}
        names_all = dict(id_to_name)
        for entry in await asyncio.to_thread(listed, self._archive, names):
            if entry.source not in by_name:
                by_name[entry.source] = -len(by_name) - 1
                names_all[by_name[entry.source]] = entry.source
        cold = archive_scan(self._archive, by_name, names, wanted, lo, hi)
        return PointScan(merge_scans(self._scan(where, batch_size), cold), names_all)

    async def _scan(self, where: ScanFilter, batch_size: int) -> AsyncGenerator[list[RawPoint], None]:
        if where.source_ids is not None and not where.source_ids:
            return
        if where.codes is not None and not where.codes:
            return
        backend = self._backend
        with translate(backend, "query"):
            async with self._engine.connect() as conn:
                if where.codes is None and (where.lo_us is not None or where.hi_us is not None):
                    # A time window over all codes: list the codes so each (source, code) range of
                    # the key is read, instead of every point of the source.
                    wanted: set[str] = set()
                    for sid in where.source_ids if where.source_ids is not None else await self._ids(conn):
                        wanted.update(await self._codes(conn, sid))
                    if not wanted:
                        return
                    where = ScanFilter(where.source_ids, sorted(wanted), where.lo_us, where.hi_us)
                raw = await conn.get_raw_connection()
                rows = backend.scan(raw.driver_connection, where, batch_size)
                completed = False
                try:
                    async for batch in rows:
                        yield batch
                    completed = True
                finally:
                    try:
                        await rows.aclose()
                        if not completed and backend.name == "mysql":
                            # An unbuffered MySQL result must be read to its end before the
                            # connection is usable again; dropping it is cheaper than draining it.
                            await conn.invalidate()
                    except BaseException:
                        with contextlib.suppress(BaseException):
                            await conn.invalidate()
                        if completed:
                            raise

    async def _ids(self, conn: AsyncConnection) -> list[int]:
        return [int(i) for i in (await conn.execute(select(sources.c.id))).scalars()]

    async def _source_names(self, conn: AsyncConnection) -> dict[int, str]:
        rows = await conn.execute(select(sources.c.id, sources.c.name))
        return {int(i): str(n) for i, n in rows}

    async def _codes(self, conn: AsyncConnection, source_id: int) -> list[str]:
        dialect = self._backend.name
        return [str(c) for c in (await conn.execute(distinct_codes(source_id, dialect))).scalars()]

    async def count_frames(self, source: str, start: datetime, end: datetime) -> int:
        """How many frames of ``source`` are stored in [start, end) (an index range count)."""
        self._check_open()
        f = frames_table
        stmt = (
            select(func.count())
            .select_from(f.join(sources, sources.c.id == f.c.source_id))
            .where(sources.c.name == source, f.c.frame_time >= start, f.c.frame_time < end)
        )
        with translate(self._backend, "count the frames of"):
            async with self._engine.connect() as conn:
                return int((await conn.execute(stmt)).scalar_one())

    async def import_mark(self, key: str) -> ImportMark | None:
        """Where the last import of a file (by :func:`~witskit.storage.imports.file_key`) stopped."""
        self._check_open()
        t = import_progress
        with translate(self._backend, "read the import progress of"):
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(t).where(t.c.file_key == key))).first()
        if row is None:
            return None
        m = row._mapping
        return ImportMark(
            str(m["file_key"]),
            str(m["source"]),
            str(m["path"]),
            int(m["size"]),
            int(m["mtime_ns"]),
            int(m["head_len"]),
            str(m["head_sha256"]),
            int(m["byte_offset"]),
            int(m["line"]),
            int(m["frames"]),
            m["updated_at"],
        )

    async def save_import_mark(self, mark: ImportMark) -> None:
        """Record how far the import of a file got (after the commit of the frames it covers)."""
        self._check_open()
        t = import_progress
        values = {
            "file_key": mark.file_key,
            "source": mark.source,
            "path": mark.path,
            "size": mark.size,
            "mtime_ns": mark.mtime_ns,
            "head_len": mark.head_len,
            "head_sha256": mark.head_sha256,
            "byte_offset": mark.byte_offset,
            "line": mark.line,
            "frames": mark.frames,
            "updated_at": datetime.now(UTC),
        }
        with translate(self._backend, "save the import progress of"):
            # Delete then insert, in one transaction: the same statement on every backend.
            async with self._engine.begin() as conn:
                await conn.execute(delete(t).where(t.c.file_key == mark.file_key))
                await conn.execute(insert(t).values(**values))

    async def sources(self) -> list[SourceInfo]:
        """Every source, by name, with its time span and exact frame and point counts."""
        self._check_open()
        s = sources
        stmt = select(
            s.c.name, s.c.created_at, s.c.first_time, s.c.last_time, s.c.frame_count, s.c.point_count
        ).order_by(s.c.name)
        with translate(self._backend, "list the sources of"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [SourceInfo(str(n), c, f, la, int(fc), int(pc)) for n, c, f, la, fc, pc in rows]

    async def latest(self, source: str) -> dict[str, tuple[datetime, Value]]:
        """The newest ``(time, value)`` of every code of ``source`` ({} for an unknown source).

        One short index probe per code (the points of its newest time, at the end of its
        (source, code) range), never a scan. When several frames share that time (a rig sending
        several frames a second), the one received last wins.
        """
        self._check_open()
        p = points
        f = frames_table
        out: dict[str, tuple[datetime, Value]] = {}
        with translate(self._backend, "query"):
            async with self._engine.connect() as conn:
                sid = (await conn.execute(select(sources.c.id).where(sources.c.name == source))).scalar()
                if sid is None:
                    return out
                ints = integer_codes()
                blocks = self._backend.name == "postgresql"
                for code in await self._codes(conn, int(sid)):
                    if blocks:
                        rows = (await conn.execute(_LATEST_PG, {"sid": int(sid), "code": code})).all()
                    else:
                        here = (p.c.source_id == sid, p.c.code == code)
                        newest = select(func.max(p.c.time)).where(*here).scalar_subquery()
                        stmt = (
                            select(p.c.time, p.c.value_num, p.c.value_text, p.c.frame_key, p.c.idx)
                            .where(*here, p.c.time == newest)
                            .order_by(p.c.frame_key.desc(), p.c.idx.desc())
                        )
                        rows = (await conn.execute(stmt)).all()
                    if not rows:
                        continue
                    row = rows[0]
                    time_ = row[0]
                    if len({r[3] for r in rows}) > 1:
                        # Same second, several frames: the last received (then the last line) wins.
                        got = await conn.execute(
                            select(f.c.frame_key, f.c.received_at).where(
                                f.c.source_id == sid,
                                f.c.frame_time == time_,
                                f.c.frame_key.in_({r[3] for r in rows}),
                            )
                        )
                        received = {int(k): at for k, at in got}
                        never = datetime.min.replace(tzinfo=UTC)
                        row = max(rows, key=lambda r: (received.get(int(r[3]), never), r[3], r[4]))
                    time, num, txt = row[0], row[1], row[2]
                    out[code] = (time, stored_value(code, num, txt, ints))
        return out

    async def raw_frame(self, source: str, frame_key: int) -> bytes | None:
        """The bytes of a stored frame exactly as received (trace a :class:`PointRow` to its source).

        ``frame_key`` is :attr:`PointRow.frame_key`; None when no such frame is stored.
        """
        self._check_open()
        stmt = (
            select(frames_table.c.raw)
            .select_from(frames_table.join(sources, sources.c.id == frames_table.c.source_id))
            .where(sources.c.name == source, frames_table.c.frame_key == frame_key)
        )
        with translate(self._backend, "query"):
            async with self._engine.connect() as conn:
                raw = (await conn.execute(stmt)).scalar()
        return None if raw is None else bytes(raw)

    async def to_dataframe(
        self,
        source: str | Iterable[str] | None = None,
        codes: str | Iterable[str] | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        *,
        wide: bool = False,
    ) -> DataFrame:
        """Load a query into pandas (needs ``witskit[pandas]``).

        Columns as :func:`witskit.storage.sync.to_dataframe` describes.
        """
        return await frame_from_batches(self.query_batches(source, codes, start, end), wide=wide)

    # Housekeeping --------------------------------------------------------------------------------
    async def size_on_disk(self) -> int | None:
        """Bytes the store uses on disk (SQLite: file + WAL; servers: WitsKit's tables), or None."""
        self._check_open()
        with translate(self._backend, "measure"):
            async with self._engine.connect() as conn:
                return await self._backend.size_on_disk(conn)

    async def ping(self) -> None:
        """Round trip to the database; raises a StorageError (``transient`` when it is down)."""
        self._check_open()
        with translate(self._backend, "reach"):
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")

    # Retention -----------------------------------------------------------------------------------
    async def retention(
        self,
        policy: RetentionPolicy,
        *,
        apply: bool = False,
        now: datetime | None = None,
        archived: Archived | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> RetentionReport:
        """Plan (``apply=False``) or apply ``policy``: what leaves the hot store, per engine as
        :mod:`witskit.storage.retention` says. ``archived(source, start, end)``, when given, must
        confirm each range before it goes; ``lock_timeout`` (seconds) bounds the wait for each
        PostgreSQL partition's lock."""
        self._check_open()
        with translate(self._backend, "apply retention to" if apply else "plan retention for"):
            if not apply:
                return await plan_retention(self._engine, self._backend, policy, now=now, archived=archived)
            return await apply_retention(
                self._engine, self._backend, policy, now=now, archived=archived, lock_timeout=lock_timeout
            )

    async def ensure_partitions_ahead(self, now: datetime | None = None, own: Iterable[str] = ()) -> int:
        """PostgreSQL: create this month's and next month's partitions, and next month's own leaves
        of the ``own`` sources (those with a retention of their own); 0 elsewhere."""
        self._check_open()
        if self._backend.name != "postgresql":
            return 0
        with translate(self._backend, "create partitions in"):
            return await ensure_ahead(self._engine, now, own)

    async def compact(
        self,
        before: datetime | None = None,
        *,
        sources: Iterable[str] | None = None,
        on_day: Callable[[str, CompactedDay], None] | None = None,
    ) -> int:
        """PostgreSQL: move the points older than ``before`` (default: the current hour) from rows
        into hourly blocks (:mod:`witskit.storage.blocks`); the number of points moved (0 elsewhere).

        ``sources`` (names) limits it to those sources; ``on_day(source, day)`` is told of each
        (source, UTC day) once it is committed. Reads return the same points before and after;
        safe while writers and other compactions run (an advisory lock serialises compactions).
        """
        self._check_open()
        if self._backend.name != "postgresql":
            return 0
        cutoff = before or datetime.now(UTC)
        with translate(self._backend, "compact points in"):
            async with self._engine.connect() as conn:
                names = await self._source_names(conn)
            ids = None if sources is None else self._ids_of(names, sources)
            # A connection of its own: SQLAlchemy's would have begun a transaction around ours.
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                drv: Any = raw.driver_connection
                told = None if on_day is None else (lambda d: on_day(names.get(d.source_id, "?"), d))
                moved = await _compact(drv, cutoff, source_ids=ids, on_day=told)
        if moved:
            logger.info("storage: compacted %d points into hourly blocks", moved)
        return moved

    async def compaction_plan(
        self, before: datetime | None = None, *, sources: Iterable[str] | None = None
    ) -> list[tuple[str, CompactedDay]]:
        """PostgreSQL: what :meth:`compact` would move now, per (source name, UTC day); [] elsewhere."""
        self._check_open()
        if self._backend.name != "postgresql":
            return []
        with translate(self._backend, "plan compaction of"):
            async with self._engine.connect() as conn:
                names = await self._source_names(conn)
            ids = None if sources is None else self._ids_of(names, sources)
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                days = await plan_compaction(raw.driver_connection, before or datetime.now(UTC), ids)
        return [(names.get(d.source_id, "?"), d) for d in days]

    @staticmethod
    def _ids_of(names: dict[int, str], wanted: Iterable[str]) -> list[int]:
        wanted = list(wanted)
        by_name = {n: i for i, n in names.items()}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise UsageError(f"no source named {missing[0]!r} in the store")
        return [by_name[w] for w in wanted]

    # Downsampling --------------------------------------------------------------------------------
    async def series(
        self,
        source: str,
        codes: str | Iterable[str] | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        points: int = DEFAULT_POINTS,
    ) -> Series | None:
        """``points`` time buckets of ``source`` per code, each with min, max, avg, first, last and
        counts, aggregated by the database (None for an unknown source).

        For charts of long ranges: a month of 1 Hz data comes back as 600 buckets per code, not as
        2.6 million rows. Arguments and result as :func:`witskit.storage.series.downsample`.
        """
        self._check_open()
        if self._archive is not None:
            return await self._series_both(self._archive, source, codes, start, end, points)
        with translate(self._backend, "query"):
            async with self._engine.connect() as conn:
                return await downsample(conn, source, codes, start, end, points)

    async def _series_both(
        self,
        archive: Archive,
        source: str,
        codes: str | Iterable[str] | None,
        start: TimeBound,
        end: TimeBound,
        points: int,
    ) -> Series | None:
        """:meth:`series` over both tiers: the archive serves the times before the source's first
        frame in the database, the database the rest, in the same buckets."""
        entries = [e for e in await asyncio.to_thread(listed, archive, [source]) if e.first and e.last]
        a_first = min((datetime.fromisoformat(e.first) for e in entries if e.first), default=None)
        a_last = max((datetime.fromisoformat(e.last) for e in entries if e.last), default=None)
        lo, hi = parse_time(start, "start"), parse_time(end, "end")
        with translate(self._backend, "query"):
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(sources.c.first_time, sources.c.last_time).where(sources.c.name == source)
                    )
                ).first()
                if row is None:
                    return None
                h_first, h_last = row[0], row[1]
                if lo is None:
                    lo = min((t for t in (a_first, h_first) if t is not None), default=None)
                if hi is None:
                    lasts = [t + timedelta(microseconds=1) for t in (a_last, h_last) if t is not None]
                    hi = max(lasts, default=None)
                wanted = resolve_codes(codes) if codes is not None else None
                if wanted is None:
                    sid = (
                        await conn.execute(select(sources.c.id).where(sources.c.name == source))
                    ).scalar_one()
                    hot_codes = {
                        str(c)
                        for c in (await conn.execute(distinct_codes(int(sid), self._backend.name))).scalars()
                    }
                    wanted = sorted(hot_codes | await asyncio.to_thread(archive_codes, archive, source))
                hot = await downsample(conn, source, wanted, lo, hi, points)
        if hot is None or hot.start is None or hot.end is None or not hot.width_us:
            return hot
        lo_us, hi_us = to_micros(hot.start), to_micros(hot.end)
        cold_hi = hi_us if h_first is None else min(hi_us, to_micros(h_first))
        if cold_hi <= lo_us:
            return hot
        cold = await asyncio.to_thread(
            archive_series, archive, source, list(hot.codes), lo_us, cold_hi, hot.width_us, lo_us
        )
        merged = {code: merge_series(cold[code], s) for code, s in hot.codes.items()}
        return Series(hot.source, hot.start, hot.end, hot.width_us, hot.buckets, merged)
