"""What every backend provides, and the frame-to-rows preparation they share.

A backend owns its engine settings (pragmas, pool, timeouts), the few SQL statements whose dialect
differs, the bulk write path on its driver's own connection, and the reading of its driver's
errors. Everything else (idempotency, collision handling, transactions, queries) is written once in
:mod:`witskit.storage.store` on top of these primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from witskit.protocol.decoder import Value
from witskit.storage._url import ParsedURL
from witskit.storage.errors import DriverNotInstalled, StorageError

__all__ = [
    "BackendImpl",
    "Classified",
    "Layout",
    "Pending",
    "RawPoint",
    "ScanFilter",
    "WriteRace",
    "is_plain_code",
    "layouts",
    "split",
]

#: (error class, short reason) for a driver exception, or None when the backend does not know it.
Classified = tuple[type[StorageError], str] | None

#: Which ``pip install`` extra brings each backend's driver.
_EXTRAS: Final[dict[str, str]] = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}

#: An hour in µs: a block (revision 0009) holds the points of one hour from its ``span_start``.
HOUR_US: Final = 3_600_000_000


class WriteRace(Exception):
    """A concurrent writer stored some of the same new frames first: the store retries the write.

    Raised by a backend whose insert cannot skip those frames itself (MySQL, see ``_mysql.py``).
    """


class Pending:
    """One frame on its way into the database: its key, its times and its points."""

    __slots__ = (
        "codes",
        "errors",
        "key",
        "probe",
        "raw",
        "received_at",
        "source",
        "time",
        "time_us",
        "values",
    )

    def __init__(
        self,
        source: str,
        key: int,
        time: datetime,
        time_us: int,
        received_at: datetime,
        raw: bytes,
        errors: str | None,
        codes: Sequence[str],
        values: Sequence[Value],
    ) -> None:
        self.source = source
        self.key = key
        self.time = time
        self.time_us = time_us
        self.received_at = received_at
        self.raw = raw
        self.errors = errors
        self.codes = codes
        self.values = values
        self.probe = 0

    @property
    def identity(self) -> tuple[int, bytes]:
        """What makes two frames of a source the same frame: frame time and bytes."""
        return self.time_us, self.raw


def is_plain_code(code: str) -> bool:
    """True for a 4-ASCII-digit code (safe to write into a SQL statement as a literal)."""
    return len(code) == 4 and code.isascii() and code.isdigit()


class Layout(NamedTuple):
    """Frames that share one layout (the same codes in the same order), and their values by column.

    ``columns[i]`` holds the value of ``codes[i]`` in every frame, in frame order, so the frame's
    key and time lists (``keys``, ``times_us``) line up with each column.
    """

    codes: tuple[str, ...]
    frames: list[Pending]
    columns: list[tuple[Value, ...]]

    @property
    def keys(self) -> list[int]:
        """The frame keys, in frame order."""
        return [p.key for p in self.frames]

    @property
    def times_us(self) -> list[int]:
        """The frame times in microseconds, in frame order."""
        return [p.time_us for p in self.frames]


def layouts(frames: Sequence[Pending]) -> list[Layout]:
    """Group frames by layout and turn each group's values into columns.

    A rig repeats a few layouts, so a column holds one code for every frame of the group. Writing
    column by column feeds each (source, code) range of the points key in time order: inserts land
    next to each other instead of all over the B-tree. The transpose is ``zip(*rows)``, in C.
    """
    groups: dict[tuple[str, ...], list[Pending]] = {}
    for p in frames:
        codes = p.codes if isinstance(p.codes, tuple) else tuple(p.codes)
        group = groups.get(codes)
        if group is None:
            groups[codes] = [p]
        else:
            group.append(p)
    return [
        Layout(codes, group, list(zip(*(p.values for p in group), strict=True)) if codes else [])
        for codes, group in groups.items()
    ]


def split(column: Sequence[Value]) -> tuple[list[Any], list[str | None]]:
    """A column of values as (value_num column, value_text column)."""
    return (
        [None if type(v) is str else v for v in column],
        [v if type(v) is str else None for v in column],
    )


#: A stored point as the fast read path yields it: (source id, time in µs since 1970-01-01 UTC,
#: code, value_num, value_text, frame key, idx). No datetime and no object per row.
RawPoint = tuple[int, int, str, float | None, str | None, int, int]


@dataclass(frozen=True, slots=True)
class ScanFilter:
    """Which points a scan reads: source ids, codes (None: all) and a [lo, hi) range in µs."""

    source_ids: Sequence[int] | None
    codes: Sequence[str] | None
    lo_us: int | None
    hi_us: int | None


class BackendImpl(ABC):
    """One SQL backend: engine construction, bulk writes and error reading."""

    name: ClassVar[str]
    #: True when writes must be serialised inside the process (SQLite has one writer at a time).
    single_writer: ClassVar[bool] = False

    def __init__(self, url: ParsedURL) -> None:
        self.url = url
        #: Seconds to wait for a connection, a lock or the pool (set by :meth:`create_engine`).
        self.timeout = 30.0

    # Engine -----------------------------------------------------------------------------------
    def create_engine(self, *, pool_size: int, timeout: float) -> AsyncEngine:
        """An async engine for this URL; raises :class:`DriverNotInstalled` naming the extra."""
        self.timeout = timeout
        try:
            engine = create_async_engine(
                self.url.sqlalchemy_url,
                # Never put bound values (frame bytes, names) into exception messages or logs.
                hide_parameters=True,
                **self.engine_options(pool_size=pool_size, timeout=timeout),
            )
        except ImportError as exc:
            missing = exc.name or self.url.driver
            raise DriverNotInstalled(
                f"{self.name} support needs the {missing!r} package, which is not installed: "
                f"pip install 'witskit[{_EXTRAS[self.name]}]' ({self.url.display})",
                url=self.url.display,
            ) from None
        self.configure_engine(engine)
        return engine

    @abstractmethod
    def engine_options(self, *, pool_size: int, timeout: float) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine`` (pool, connect args)."""

    def configure_engine(self, engine: AsyncEngine) -> None:  # noqa: B027 - optional hook
        """Attach event listeners (pragmas, transaction start) to a new engine."""

    # Transactions on the driver's connection --------------------------------------------------
    async def setup(self, drv: Any, info: MutableMapping[Any, Any]) -> None:  # noqa: B027 - optional hook
        """Per-connection preparation, run before each write's transaction (outside it).

        ``info`` is the pooled connection's private dict, to do the work once per connection.
        """

    @abstractmethod
    async def begin(self, drv: Any) -> None:
        """Start a write transaction on the driver connection."""

    @abstractmethod
    async def commit(self, drv: Any) -> None:
        """Commit the write transaction."""

    @abstractmethod
    async def rollback(self, drv: Any) -> None:
        """Roll the write transaction back."""

    # Write primitives -------------------------------------------------------------------------
    @abstractmethod
    async def ensure_sources(self, drv: Any, names: Sequence[str], now: datetime) -> dict[str, int]:
        """The id of each source name, creating the missing ones."""

    # A batch may hold many sources (a fleet behind one listener), and each statement is a round
    # trip (a thread hop on SQLite): every primitive covers the whole batch in a few statements.
    @abstractmethod
    async def existing_many(
        self, drv: Any, wanted: Mapping[int, Sequence[int]], spans: Mapping[int, tuple[int, int]]
    ) -> dict[int, dict[int, tuple[int, bytes]]]:
        """Per source id, the stored ``(frame time in µs, raw)`` of those of its keys that exist.

        ``spans`` holds each source's (first, last) frame time in µs: a replay of a frame has its
        time, so a backend may look only there (PostgreSQL: only the partitions of that range).
        """

    @abstractmethod
    async def insert_many(
        self,
        drv: Any,
        groups: Mapping[int, Sequence[Pending]],
        info: MutableMapping[Any, Any],
        *,
        contended: bool = False,
    ) -> list[tuple[int, list[Pending], int]]:
        """Insert new frames and their points: (source id, frames inserted, points inserted) each.

        ``contended``: a retry after a race lost to a concurrent writer; take no shortcut that a
        concurrent writer's rows make fail."""

    @abstractmethod
    async def bump_sources(self, drv: Any, bumps: Sequence[tuple[int, int, int, datetime, datetime]]) -> None:
        """Per (source id, frames, points, first, last): add to the counters, widen the times."""

    # Reads ------------------------------------------------------------------------------------
    #: SQL for a point's time (``p.time``) as integer µs since 1970-01-01 UTC (the column itself on
    #: SQLite).
    time_us_sql: ClassVar[str] = "p.time"

    #: How a scan joins each point to its frame (for the receive time): always points first, then
    #: the frame by its primary key.
    scan_join: ClassVar[str] = "JOIN"

    #: The relation points are read from: PostgreSQL reads ``points_all`` (rows and hourly blocks,
    #: revision 0009), whose ``span_start`` bounds each row's time from below within an hour.
    points_relation: ClassVar[str] = "points"
    has_spans: ClassVar[bool] = False

    #: PostgreSQL: the receive times come from the range's frames read once (a MATERIALIZED CTE,
    #: hash-joined), not from one probe per point (see :meth:`scan_sql`).
    frames_once: ClassVar[bool] = False

    def placeholder(self, n: int) -> str:
        """The driver's n-th (1-based) bind placeholder."""
        return "?"

    def bind_time(self, us: int) -> Any:
        """A µs bound as the driver binds the ``time`` column."""
        return us

    def scan_sql(self, where: ScanFilter) -> tuple[str, list[Any]]:
        """The points of ``where`` in time order, then source, then the order they were received.

        Frames with the same DATE/TIME second (a rig sending at 5 Hz) come back in the order they
        were received: ties are broken by the frame's receive time (``frames.received_at``, which
        strictly increases per parser, see :class:`~witskit.protocol.FrameParser`), then by frame
        key and line, so the order is total and the same on every run (exports page by it).

        Plain SQL on the driver: every value is bound; codes and ids are only ever placeholders.
        """
        args: list[Any] = []

        def bind(value: Any) -> str:
            args.append(value)
            return self.placeholder(len(args))

        conds: list[str] = []
        if where.source_ids is not None:
            conds.append(f"p.source_id IN ({', '.join(bind(i) for i in where.source_ids)})")
        if where.codes is not None:
            conds.append(f"p.code IN ({', '.join(bind(c) for c in where.codes)})")
        if where.lo_us is not None:
            conds.append(f"p.time >= {bind(self.bind_time(where.lo_us))}")
        if where.hi_us is not None:
            conds.append(f"p.time < {bind(self.bind_time(where.hi_us))}")
        if self.has_spans:  # the blocks that can hold points of the range, by their key
            if where.lo_us is not None:
                # A block's hour is a whole UTC hour: the one holding lo is the first to read (and a
                # bound on a whole hour lets PostgreSQL prune the month before it).
                conds.append(f"p.span_start >= {bind(self.bind_time(where.lo_us - where.lo_us % HOUR_US))}")
            if where.hi_us is not None:
                conds.append(f"p.span_start < {bind(self.bind_time(where.hi_us))}")
        # The same bounds, as constants, on the frame looked up per point (its time is the point's):
        # PostgreSQL then plans that lookup over the partitions in range only, not every one.
        # (Bound again: SQLite's and MySQL's placeholders are positional.)
        frame_conds = ["f.source_id = p.source_id", "f.frame_key = p.frame_key", "f.frame_time = p.time"]
        if where.source_ids is not None:
            frame_conds.append(f"f.source_id IN ({', '.join(bind(i) for i in where.source_ids)})")
        if where.lo_us is not None:
            frame_conds.append(f"f.frame_time >= {bind(self.bind_time(where.lo_us))}")
        if where.hi_us is not None:
            frame_conds.append(f"f.frame_time < {bind(self.bind_time(where.hi_us))}")
        if self.frames_once:
            # A frame's receive time joined once per frame (a 1-hour window of 30 channels is
            # 3,600 frames for 108,000 points): the range's frames are read into a MATERIALIZED
            # CTE, which the planner cannot probe per row, so it hashes them whatever the
            # statistics say, and the points side is still driven by the points key (the plan that
            # a fresh partition without statistics used to turn into a frames-first join).
            own = frame_conds[3:]  # the range's bounds, without the three that correlate to p
            where_f = f" WHERE {' AND '.join(own)}" if own else ""
            sql = (
                "WITH fr AS MATERIALIZED (SELECT f.source_id, f.frame_key, f.frame_time, f.received_at "  # noqa: S608
                f"FROM frames f{where_f}) "
                f"SELECT p.source_id, {self.time_us_sql}, p.code, p.value_num, p.value_text, "
                f"p.frame_key, p.idx FROM {self.points_relation} p LEFT JOIN fr "
                "ON fr.source_id = p.source_id AND fr.frame_key = p.frame_key AND fr.frame_time = p.time"
                f"{' WHERE ' + ' AND '.join(conds) if conds else ''} "
                "ORDER BY p.time, p.source_id, fr.received_at, p.frame_key, p.idx"
            )
            return sql, args
        received = f"SELECT f.received_at FROM frames f WHERE {' AND '.join(frame_conds)}"  # noqa: S608
        # The frame's receive time is a subquery per point, not a join: the planner must always
        # drive from the points key (source, code, time). With a join, a freshly created partition
        # without statistics made PostgreSQL drive from frames and probe the points key without
        # its code column, 100x slower; MariaDB did the same after a bulk import.
        sql = (
            f"SELECT p.source_id, {self.time_us_sql}, p.code, p.value_num, p.value_text, "  # noqa: S608
            f"p.frame_key, p.idx FROM {self.points_relation} p"
            f"{' WHERE ' + ' AND '.join(conds) if conds else ''} "
            f"ORDER BY p.time, p.source_id, ({received}), p.frame_key, p.idx"
        )
        return sql, args

    @abstractmethod
    def scan(self, drv: Any, where: ScanFilter, batch_size: int) -> AsyncGenerator[list[RawPoint], None]:
        """Stream the points of ``where`` in time order, ``batch_size`` rows per list, on ``drv``.

        Rows come straight from the driver as tuples (no ORM row, no datetime): the fast path
        under every query and export. Closing the generator early leaves ``drv`` usable, or raises
        so the caller drops the connection.
        """

    @abstractmethod
    async def size_on_disk(self, conn: AsyncConnection) -> int | None:
        """Bytes used by WitsKit's tables (or the database file), None when unknown."""

    # Errors -----------------------------------------------------------------------------------
    @abstractmethod
    def classify(self, exc: BaseException) -> Classified:
        """The StorageError class and a short reason for a driver exception (None: not ours)."""
