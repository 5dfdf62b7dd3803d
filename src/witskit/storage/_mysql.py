"""MariaDB and MySQL through asyncmy.

Why asyncmy rather than aiomysql: both are maintained and both are SQLAlchemy asyncio dialects,
but asyncmy's protocol and row parsing are compiled (Cython) where aiomysql is pure Python on top of
PyMySQL, its ``executemany`` turns an INSERT into multi-row statements (and on MariaDB into one
binary ``COM_STMT_BULK_EXECUTE``), and it reports server warnings through ``logging`` where aiomysql
turns each into a Python ``warnings.warn`` (fatal under ``-W error``, noisy in a service).

Writes are plain multi-row INSERTs, not ``INSERT IGNORE``: IGNORE also downgrades real errors
(truncation, bad values) to warnings, silently changing data, and the duplicates it is meant to
skip are already filtered out by the key lookup before the insert. Two writers storing the same
new frame at the same moment is the one case left; the loser gets a duplicate-key error, and the
store retries its whole write, which then finds the frame stored.

Times are ``DATETIME(6)`` holding UTC: DATETIME has no time zone, so the session ``time_zone`` never
shifts it (a ``TIMESTAMP`` would be converted, and ends in 2038). WitsKit writes naive UTC values
and reads them back as timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.storage._base import (
    BackendImpl,
    Classified,
    Pending,
    RawPoint,
    ScanFilter,
    WriteRace,
    layouts,
    split,
)
from witskit.storage.errors import (
    AuthenticationFailed,
    DatabaseNotFound,
    DatabaseUnavailable,
    SchemaMismatch,
    StorageConfigError,
    StorageError,
    StorageFull,
)
from witskit.storage.schema import VERSION_TABLE, from_micros, to_micros

__all__ = ["MySQLBackend"]

_IN_CHUNK: Final = 1000

#: MySQL/MariaDB error number -> (error class, reason).
_ERRNOS: Final[dict[int, tuple[type[StorageError], str]]] = {
    1044: (AuthenticationFailed, "the user may not use this database"),
    1045: (AuthenticationFailed, "access denied (wrong user or password)"),
    1698: (AuthenticationFailed, "access denied"),
    1049: (DatabaseNotFound, "the database does not exist"),
    1146: (SchemaMismatch, "a table is missing: run `witskit db upgrade`"),
    1054: (SchemaMismatch, "a column is missing: run `witskit db upgrade`"),
    1142: (StorageConfigError, "the user lacks a privilege"),
    1227: (StorageConfigError, "the user lacks a privilege"),
    1021: (StorageFull, "the server's disk is full"),
    1114: (StorageFull, "the table is full (disk or quota)"),
    1040: (DatabaseUnavailable, "too many connections"),
    1053: (DatabaseUnavailable, "the server is shutting down"),
    1205: (DatabaseUnavailable, "lock wait timeout"),
    1213: (DatabaseUnavailable, "deadlock"),
    1290: (DatabaseUnavailable, "the server is read-only"),
    1927: (DatabaseUnavailable, "the connection was killed"),
    2002: (DatabaseUnavailable, "cannot connect"),
    2003: (DatabaseUnavailable, "cannot connect"),
    2005: (DatabaseUnavailable, "unknown host"),
    2006: (DatabaseUnavailable, "the server has gone away"),
    2013: (DatabaseUnavailable, "the connection was lost"),
    2014: (StorageError, "commands out of sync"),
    2055: (DatabaseUnavailable, "the connection was lost"),
    4031: (DatabaseUnavailable, "the server closed an idle connection"),
}


_BUMP: Final = (
    "UPDATE sources SET frame_count = frame_count + %s, point_count = point_count + %s, "
    "first_time = LEAST(COALESCE(first_time, %s), %s), "
    "last_time = GREATEST(COALESCE(last_time, %s), %s) WHERE id = %s"
)


def _is_duplicate_key(exc: BaseException) -> bool:
    """ER_DUP_ENTRY (1062)."""
    return type(exc).__module__.startswith("asyncmy") and bool(exc.args) and exc.args[0] == 1062


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def _micros(value: Any) -> int:
    if isinstance(value, datetime):
        return to_micros(value.replace(tzinfo=UTC) if value.tzinfo is None else value)
    raise TypeError(f"unexpected frame_time {value!r}")


class MySQLBackend(BackendImpl):
    """MariaDB / MySQL through asyncmy."""

    name = "mysql"

    def engine_options(self, *, pool_size: int, timeout: float) -> dict[str, Any]:
        """Pool with pre-ping: MySQL closes idle connections after ``wait_timeout``."""
        return {
            "pool_size": pool_size,
            "pool_timeout": timeout,
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": max(1, round(timeout))},
        }

    async def begin(self, drv: Any) -> None:
        """START TRANSACTION."""
        await drv.begin()

    async def commit(self, drv: Any) -> None:
        """COMMIT."""
        await drv.commit()

    async def rollback(self, drv: Any) -> None:
        """ROLLBACK."""
        await drv.rollback()

    async def _fetch(self, drv: Any, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with drv.cursor() as cur:
            await cur.execute(sql, tuple(args))
            return list(await cur.fetchall())

    async def ensure_sources(self, drv: Any, names: Sequence[str], now: datetime) -> dict[str, int]:
        """Insert missing names (a no-op update on a duplicate: no warning, no IGNORE), read ids."""
        async with drv.cursor() as cur:
            await cur.executemany(
                "INSERT INTO sources (name, created_at) VALUES (%s, %s) ON DUPLICATE KEY UPDATE id = id",
                [(n, _naive(now)) for n in names],
            )
        marks = ", ".join(["%s"] * len(names))  # placeholders only: the names are bound
        sql = f"SELECT id, name FROM sources WHERE name IN ({marks})"  # noqa: S608
        rows = await self._fetch(drv, sql, names)
        return {str(name): int(sid) for sid, name in rows}

    async def insert_many(
        self,
        drv: Any,
        groups: Mapping[int, Sequence[Pending]],
        info: MutableMapping[Any, Any],
        *,
        contended: bool = False,
    ) -> list[tuple[int, list[Pending], int]]:
        """Multi-row INSERTs of every source's frames, then of every point.

        Points go in (source, code, time) order so InnoDB appends within each code's range; one
        ``executemany`` for the whole batch, so a fleet's batch (a thousand rigs with a frame
        each) costs two statements, not two per rig.
        """
        records: list[tuple[Any, ...]] = []
        out: list[tuple[int, list[Pending], int]] = []
        for source_id, frames in groups.items():
            by_code: dict[str, list[tuple[Any, ...]]] = {}
            for lay in layouts(frames):
                keys, times = lay.keys, [_naive(p.time) for p in lay.frames]
                for idx, (code, col) in enumerate(zip(lay.codes, lay.columns, strict=True)):
                    nums, texts = split(col)
                    by_code.setdefault(code, []).extend(
                        zip(
                            keys,
                            times,
                            nums,
                            repeat(source_id),
                            repeat(idx),
                            repeat(code),
                            texts,
                            strict=False,
                        )
                    )
            count = len(records)
            records.extend(row for code in sorted(by_code) for row in by_code[code])
            out.append((source_id, list(frames), len(records) - count))
        async with drv.cursor() as cur:
            try:
                await cur.executemany(
                    "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (sid, p.key, _naive(p.received_at), _naive(p.time), p.raw, p.errors)
                        for sid, frames in groups.items()
                        for p in frames
                    ],
                )
            except Exception as exc:
                if _is_duplicate_key(exc):
                    # Another writer committed some of these frames after our lookup.
                    raise WriteRace from exc
                raise
            if records:
                await cur.executemany(
                    "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    records,
                )
        return out

    async def existing_many(
        self, drv: Any, wanted: Mapping[int, Sequence[int]], spans: Mapping[int, tuple[int, int]]
    ) -> dict[int, dict[int, tuple[int, bytes]]]:
        """(source, key) pairs looked up 1,000 at a time, each an equality probe of the key."""
        pairs = [(sid, key) for sid, keys in wanted.items() for key in keys]
        out: dict[int, dict[int, tuple[int, bytes]]] = {sid: {} for sid in wanted}
        for start in range(0, len(pairs), _IN_CHUNK):
            chunk = pairs[start : start + _IN_CHUNK]
            marks = ", ".join(["(%s, %s)"] * len(chunk))  # placeholders only: the pairs are bound
            sql = (
                "SELECT source_id, frame_key, frame_time, raw FROM frames "  # noqa: S608
                f"WHERE (source_id, frame_key) IN ({marks})"
            )
            for sid, key, ts, raw in await self._fetch(drv, sql, [v for pair in chunk for v in pair]):
                out[int(sid)][int(key)] = (_micros(ts), bytes(raw))
        return out

    async def bump_sources(self, drv: Any, bumps: Sequence[tuple[int, int, int, datetime, datetime]]) -> None:
        """Every source's counters in one ``executemany``."""
        async with drv.cursor() as cur:
            await cur.executemany(
                _BUMP,
                [
                    (frames, points, _naive(first), _naive(first), _naive(last), _naive(last), sid)
                    for sid, frames, points, first, last in bumps
                ],
            )

    #: DATETIME(6) holds the UTC wall time: its distance from the epoch is the µs count.
    time_us_sql = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', p.time)"

    #: Points first, then each frame by its primary key. Right after a bulk import InnoDB's table
    #: statistics can be stale, and the optimizer then drove the join from ``frames`` and read all
    #: of ``points`` once per frame (a 600,000-point export ran for minutes instead of 2 s).
    scan_join = "STRAIGHT_JOIN"

    def placeholder(self, n: int) -> str:
        """asyncmy's format-style placeholder."""
        return "%s"

    def bind_time(self, us: int) -> Any:
        """The naive UTC wall time the DATETIME(6) column holds."""
        return _naive(from_micros(us))

    async def scan(
        self, drv: Any, where: ScanFilter, batch_size: int
    ) -> AsyncGenerator[list[RawPoint], None]:
        """An unbuffered (server-side) cursor: memory stays at one batch whatever the result size.

        Closed early, the result is not drained: the store drops the connection instead.
        """
        from asyncmy.cursors import SSCursor  # the driver is an optional extra

        sql, args = self.scan_sql(where)
        cur = drv.cursor(SSCursor)
        await cur.execute(sql, tuple(args))
        while rows := await cur.fetchmany(batch_size):
            yield rows
        await cur.close()

    async def size_on_disk(self, conn: AsyncConnection) -> int | None:
        """The tablespace files of WitsKit's tables (file-per-table InnoDB, the default).

        ``information_schema.tables`` sizes are statistics refreshed lazily (zero right after a
        bulk load), so the files' sizes are read first: ``INNODB_SYS_TABLESPACES`` on MariaDB,
        ``INNODB_TABLESPACES`` on MySQL 8 (both need the PROCESS privilege); the statistics are
        the fallback.
        """
        tables = ("sources", "frames", "points", VERSION_TABLE)
        schema = (await conn.execute(text("SELECT DATABASE()"))).scalar_one()
        names = {f"n{i}": f"{schema}/{t}" for i, t in enumerate(tables)}
        marks = ", ".join(f":{k}" for k in names)
        for view in ("INNODB_SYS_TABLESPACES", "INNODB_TABLESPACES"):
            try:
                size = (
                    await conn.execute(
                        text(f"SELECT SUM(FILE_SIZE) FROM information_schema.{view} WHERE NAME IN ({marks})"),  # noqa: S608
                        names,
                    )
                ).scalar()
            except DBAPIError:
                continue  # no such view on this server, or no PROCESS privilege
            if size:
                return int(size)
        result = await conn.execute(
            text(
                "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "  # noqa: S608
                "WHERE table_schema = DATABASE() AND table_name IN "
                f"('sources', 'frames', 'points', '{VERSION_TABLE}')"
            )
        )
        return int(result.scalar_one())

    def classify(self, exc: BaseException) -> Classified:
        """By the server's (or client's) error number, ``args[0]``."""
        if not type(exc).__module__.startswith("asyncmy"):
            return None
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if errno == 3 and ("28" in message or "space" in message.lower()):
            return StorageFull, f"the server cannot write a file: disk full ({message})"
        hit = _ERRNOS.get(errno) if errno is not None else None
        if hit is not None:
            cls, reason = hit
            return cls, f"{reason} ({message})"
        if errno is not None and 2000 <= errno < 3000:
            # Client-side errors (CR_*): the connection, not the data.
            return DatabaseUnavailable, message
        return StorageError, f"{message} (error {errno})" if errno is not None else message
