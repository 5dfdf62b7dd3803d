"""SQLite, the embedded default, through aiosqlite.

aiosqlite runs the standard library's ``sqlite3`` in one thread per connection and is the driver
SQLAlchemy's asyncio SQLite dialect is built and tested on; there is no other maintained async
SQLite driver. Settings, and why:

- WAL journal: readers never block the writer and the writer never blocks readers.
- ``busy_timeout`` = the store's ``timeout``: another process holding the write lock is waited
  for, not reported as an error at once.
- ``synchronous=NORMAL`` (the default; ``?synchronous=FULL`` in the URL to change it): in WAL mode a
  commit survives a crash of the process (``kill -9``), but the last transactions before a power
  loss or kernel crash may roll back. ``FULL`` adds one fsync per commit, cheap for batched writes.
- Writes are ``BEGIN IMMEDIATE``: the write lock is taken up front, so the check for frames already
  stored and the inserts that follow see the same database, and two writers never deadlock on a
  lock upgrade. In-process writes are serialised by the store (SQLite has one writer at a time).
- A new database file is created 0600 (:func:`create_private`), its ``-wal`` and ``-shm``
  files with it, whatever the umask: it holds password and API key hashes.
- ``executemany`` on the driver connection, one statement per (layout position): the code and the
  position are literals, so only the key, time and value are bound per point.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncGenerator, Mapping, MutableMapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from witskit.storage._base import (
    BackendImpl,
    Classified,
    Pending,
    RawPoint,
    ScanFilter,
    is_plain_code,
    layouts,
    split,
)
from witskit.storage.errors import (
    DatabaseNotFound,
    DatabaseUnavailable,
    SchemaMismatch,
    StorageConfigError,
    StorageError,
    StorageFull,
)
from witskit.storage.schema import to_micros

log = logging.getLogger("witskit.storage")

__all__ = ["SQLiteBackend"]

#: Keys per ``IN (...)`` list: well under SQLite's 32,766 bound variables, and short statements.
_IN_CHUNK: Final = 500
#: Below this many frames in a layout, one generic statement is cheaper than one per column.
_COLUMN_WISE_MIN_FRAMES: Final = 16
#: Page cache per connection (KiB, as a negative cache_size): the points key's working set.
_CACHE_KIB: Final = 32 * 1024

_INSERT_FRAME: Final = (
    "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_POINT: Final = (
    "INSERT INTO points (source_id, frame_key, idx, time, code, value_num, value_text) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


_BUMP: Final = (
    "UPDATE sources SET frame_count = frame_count + ?, point_count = point_count + ?, "
    "first_time = MIN(COALESCE(first_time, ?), ?), last_time = MAX(COALESCE(last_time, ?), ?) "
    "WHERE id = ?"
)


def _column_sql(idx: int, code: str, kind: str) -> str:
    # idx is an int and code 4 ASCII digits (checked by the caller): safe as literals.
    value = {"num": "?, NULL", "text": "NULL, ?", "null": "NULL, NULL"}[kind]
    return (
        "INSERT INTO points (source_id, frame_key, idx, time, code, value_num, value_text) "  # noqa: S608
        f"VALUES (?, ?, {idx}, ?, '{code}', {value})"
    )


def _journal_mode_wal(cursor: Any, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the database.

    Switching a new database to WAL takes an exclusive lock, and when two connections open a new
    file at the same moment SQLite answers "database is locked" at once instead of calling the
    busy handler (waiting could deadlock). Runs in the connection's own thread, so it may sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def create_private(path: os.PathLike[str] | str) -> None:
    """Create the database file readable and writable by its owner only (0600), if it is not there.

    sqlite3 would create it 0644 minus the umask: world-readable (password hashes, API key hashes,
    every rig's data) in a data directory that is 0755. SQLite creates the ``-wal`` and ``-shm``
    files with the database file's permissions, so they follow. An existing file that others may
    read (made by an older version) is set to 0600 with a warning, as the signing key is, when it
    is ours to change; a directory that does not exist is left to sqlite3 to report.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(os.fspath(path))
        return
    except OSError:
        return
    try:
        if hasattr(os, "fchmod"):  # POSIX: the mode above is what the umask left of 0600
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _tighten(path: str) -> None:
    for name in (path, path + "-wal", path + "-shm"):
        try:
            st = os.stat(name)
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                os.chmod(name, 0o600)
                log.warning("%s was readable by others (mode %o); set to 0600", name, st.st_mode & 0o777)
        except (OSError, AttributeError):  # gone, not ours, or no getuid (Windows)
            continue


class SQLiteBackend(BackendImpl):
    """SQLite through aiosqlite (file or in-memory)."""

    name = "sqlite"
    single_writer = True

    def engine_options(self, *, pool_size: int, timeout: float) -> dict[str, Any]:
        """Pool and sqlite3 connect arguments."""
        connect_args = {
            "timeout": timeout,
            # Autocommit at the sqlite3 level: WitsKit says BEGIN itself (see configure_engine).
            "isolation_level": None,
            "cached_statements": 256,
        }
        if self.url.sqlite_path is None:
            # One shared connection, or each connection would see its own empty database.
            return {"connect_args": {**connect_args, "check_same_thread": False}, "poolclass": StaticPool}
        create_private(self.url.sqlite_path)
        return {"connect_args": connect_args, "pool_size": pool_size, "pool_timeout": timeout}

    def configure_engine(self, engine: AsyncEngine) -> None:
        """Pragmas on every new connection; BEGIN (IMMEDIATE for writers) on every transaction."""
        synchronous = self.url.sqlite_synchronous
        busy_ms = int(self.timeout * 1000)

        timeout = self.timeout

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
                _journal_mode_wal(cursor, timeout)
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            finally:
                cursor.close()

        def on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("witskit_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        event.listen(engine.sync_engine, "connect", on_connect)
        event.listen(engine.sync_engine, "begin", on_begin)

    # Transactions -----------------------------------------------------------------------------
    async def begin(self, drv: Any) -> None:
        """BEGIN IMMEDIATE: take the write lock now (waits up to busy_timeout)."""
        await (await drv.execute("BEGIN IMMEDIATE")).close()

    async def commit(self, drv: Any) -> None:
        """COMMIT."""
        await (await drv.execute("COMMIT")).close()

    async def rollback(self, drv: Any) -> None:
        """ROLLBACK, if a transaction is open."""
        if drv.in_transaction:
            await (await drv.execute("ROLLBACK")).close()

    # Writes -----------------------------------------------------------------------------------
    async def ensure_sources(self, drv: Any, names: Sequence[str], now: datetime) -> dict[str, int]:
        """INSERT OR IGNORE the names (only the UNIQUE(name) conflict can occur), then read ids."""
        created = to_micros(now)
        await drv.executemany(
            "INSERT OR IGNORE INTO sources (name, created_at, frame_count, point_count) VALUES (?, ?, 0, 0)",
            [(n, created) for n in names],
        )
        marks = ", ".join("?" * len(names))  # placeholders only: the names are bound
        sql = f"SELECT id, name FROM sources WHERE name IN ({marks})"  # noqa: S608
        async with drv.execute(sql, tuple(names)) as cur:
            return {name: int(sid) for sid, name in await cur.fetchall()}

    async def insert_many(
        self,
        drv: Any,
        groups: Mapping[int, Sequence[Pending]],
        info: MutableMapping[Any, Any],
        *,
        contended: bool = False,
    ) -> list[tuple[int, list[Pending], int]]:
        """Every source's frames in one ``executemany``, then the points.

        Each call into aiosqlite is a hop to its thread, so a fleet's batch (a thousand rigs with a
        frame or two each) must not cost a few statements per rig: the points of small layouts go
        into one shared ``executemany``, and only long runs of one layout get a statement per
        column (see the module notes).
        """
        await drv.executemany(
            _INSERT_FRAME,
            [
                (sid, p.key, to_micros(p.received_at), p.time_us, p.raw, p.errors)
                for sid, frames in groups.items()
                for p in frames
            ],
        )
        out: list[tuple[int, list[Pending], int]] = []
        generic: list[tuple[Any, ...]] = []
        for source_id, frames in groups.items():
            total = 0
            for lay in layouts(frames):
                keys, times = lay.keys, lay.times_us
                column_wise = len(lay.frames) >= _COLUMN_WISE_MIN_FRAMES
                for idx, (code, col) in enumerate(zip(lay.codes, lay.columns, strict=True)):
                    total += len(col)
                    kinds = set(map(type, col))
                    has_text = str in kinds
                    has_num = bool(kinds - {str, type(None)})
                    if not column_wise or not is_plain_code(code) or (has_text and has_num):
                        nums, texts = split(col)
                        generic.extend(
                            zip(
                                repeat(source_id),
                                keys,
                                repeat(idx),
                                times,
                                repeat(code),
                                nums,
                                texts,
                                strict=False,
                            )
                        )
                    elif has_text or has_num:
                        sql = _column_sql(idx, code, "text" if has_text else "num")
                        await drv.executemany(sql, zip(repeat(source_id), keys, times, col, strict=False))
                    else:
                        await drv.executemany(
                            _column_sql(idx, code, "null"), zip(repeat(source_id), keys, times, strict=False)
                        )
            out.append((source_id, list(frames), total))
        if generic:
            await drv.executemany(_INSERT_POINT, generic)
        return out

    async def existing_many(
        self, drv: Any, wanted: Mapping[int, Sequence[int]], spans: Mapping[int, tuple[int, int]]
    ) -> dict[int, dict[int, tuple[int, bytes]]]:
        """(source, key) pairs joined to ``frames`` 500 at a time: a fleet's batch in a few hops."""
        pairs = [(sid, key) for sid, keys in wanted.items() for key in keys]
        out: dict[int, dict[int, tuple[int, bytes]]] = {sid: {} for sid in wanted}
        for start in range(0, len(pairs), _IN_CHUNK):
            chunk = pairs[start : start + _IN_CHUNK]
            rows = ", ".join(["(?, ?)"] * len(chunk))  # placeholders only: the pairs are bound
            sql = (
                f"WITH w(s, k) AS (VALUES {rows}) "  # noqa: S608
                "SELECT f.source_id, f.frame_key, f.frame_time, f.raw FROM w "
                "JOIN frames f ON f.source_id = w.s AND f.frame_key = w.k"
            )
            async with drv.execute(sql, [v for pair in chunk for v in pair]) as cur:
                for sid, key, time_us, raw in await cur.fetchall():
                    out[int(sid)][int(key)] = (int(time_us), bytes(raw))
        return out

    async def bump_sources(self, drv: Any, bumps: Sequence[tuple[int, int, int, datetime, datetime]]) -> None:
        """Every source's counters in one ``executemany``."""
        await drv.executemany(
            _BUMP,
            [
                (frames, points, to_micros(first), to_micros(first), to_micros(last), to_micros(last), sid)
                for sid, frames, points, first, last in bumps
            ],
        )

    # Reads ------------------------------------------------------------------------------------
    async def scan(
        self, drv: Any, where: ScanFilter, batch_size: int
    ) -> AsyncGenerator[list[RawPoint], None]:
        """``fetchmany`` on an aiosqlite cursor: times are stored as µs already, so rows pass as is."""
        sql, args = self.scan_sql(where)
        cur = await drv.execute(sql, args)
        try:
            while rows := await cur.fetchmany(batch_size):
                yield rows
        finally:
            await cur.close()

    async def size_on_disk(self, conn: AsyncConnection) -> int | None:
        """The database file plus its WAL (None for an in-memory database)."""
        path = self.url.sqlite_path
        if path is None:
            return None
        await conn.execute(text("SELECT 1"))  # make sure the file exists and is ours
        return sum(os.path.getsize(p) for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    # Errors -----------------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> Classified:
        """By SQLite's primary result code (``sqlite3.Error.sqlite_errorcode``, Python 3.11+)."""
        if not isinstance(exc, sqlite3.Error):
            if isinstance(exc, ValueError) and "connection" in str(exc).lower():
                return DatabaseUnavailable, "the SQLite connection was closed"
            return None
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        message = str(exc)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return DatabaseUnavailable, f"the database is locked by another writer ({message})"
        if code == sqlite3.SQLITE_FULL:
            return StorageFull, f"the disk is full ({message})"
        if code == sqlite3.SQLITE_CANTOPEN:
            return DatabaseNotFound, f"the database file cannot be opened ({message})"
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
            return StorageConfigError, f"no permission to write the database ({message})"
        if code == sqlite3.SQLITE_NOTADB:
            return StorageConfigError, f"the file is not a SQLite database ({message})"
        if code == sqlite3.SQLITE_IOERR:
            return DatabaseUnavailable, f"disk I/O error ({message})"
        if "no such table" in message or "no such column" in message:
            return SchemaMismatch, f"{message}: the schema is missing or old; run `witskit db upgrade`"
        return StorageError, message
