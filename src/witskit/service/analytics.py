"""Drilling analytics in the service: the live rig state of every rig, stored; and stored ranges
classified, measured and checked for the ``/data/rig-state``, ``/data/kpi`` and ``/data/quality``
routes.

**Live.** In ``witskit run`` every source has its own
:class:`~witskit.analytics.rigstate.RigStateClassifier` (settings from the source's ``rig_state:``
in the pipeline file). :meth:`LiveAnalytics.on_frame` feeds it each record-1 frame as it is
decoded (hot path: a few microseconds) and keeps the source's current state in memory, which the
rig picker shows.

**Stored.** The states are kept as intervals in the ``rig_states`` table (Alembic revision
``0008``): one row per run of one state, ``[start_time, end_time]``. A rig changes state a few
hundred times a day, so this is a few hundred rows a day per rig where a per-second channel in the
points table would be 86,400, and it stays out of the WITS points, which hold only what the rig
sent (exports, frame counts and the raw-frame trace are untouched). A background task writes new
intervals and moves the open one's end every :data:`FLUSH_EVERY` seconds, in one transaction for
every rig; ingest never waits for it. When the database cannot be written the rows wait in memory
(at most :data:`MAX_PENDING`, the oldest dropped beyond, counted and logged).

**Computed.** History stored before the service classified it (an import, a store written by
``witskit stream``) has no rows: the routes classify the stored points of the range again, in a
worker thread that pulls the points from the database batch by batch (memory stays flat), with the
rig's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import Column, Index, String, Table, bindparam, insert, select, update

from witskit.analytics.rigstate import (
    RIG_STATE_CODES,
    RigState,
    RigStateClassifier,
    RigStateSettings,
    Sample,
    StateSample,
    classify,
)
from witskit.protocol import DecodedFrame, WITSDecoder, WITSFrame
from witskit.protocol.decoder import Value
from witskit.service._tables import TableStore, metadata
from witskit.storage.errors import StorageError
from witskit.storage.frame_scan import scan_frames
from witskit.storage.query import PointScan, integer_codes, stored_value
from witskit.storage.schema import DEFAULT_SOURCE, UTCDateTime, from_micros
from witskit.storage.store import Store

__all__ = [
    "FLUSH_EVERY",
    "MAX_PENDING",
    "MAX_RUNNING",
    "MAX_WAITING",
    "STATES",
    "AnalyticsBusy",
    "AnalyticsStore",
    "CurrentState",
    "LiveAnalytics",
    "StateInterval",
    "rig_states",
]

log = logging.getLogger("witskit.service")

#: Seconds between two writes of the live states (new intervals, the open one's end).
FLUSH_EVERY: Final = 5.0
#: Intervals waiting for the database at most; beyond, the oldest are dropped (counted, logged).
MAX_PENDING: Final = 100_000
#: Analyses (classifying, KPIs, quality checks over a stored range) running at once; more wait.
MAX_RUNNING: Final = 2
#: Analyses waiting for their turn at most, and how long each waits (seconds); beyond, 429.
MAX_WAITING: Final = 16
WAIT_FOR_TURN: Final = 20.0

rig_states = Table(
    "rig_states",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(255), nullable=False),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime(), nullable=False),
    Column("state", String(32), nullable=False),
    Index("ix_rig_states_source_start", "source", "start_time"),
)


@dataclass(frozen=True, slots=True)
class StateInterval:
    """One state of one rig from ``start`` to ``end`` (UTC; the end is the next state's start, or
    the last frame's time when the data stopped)."""

    start: datetime
    end: datetime
    state: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (times ISO 8601 UTC)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "state": self.state}


@dataclass(frozen=True, slots=True)
class CurrentState:
    """A rig's state now: what, since when, and the time of the last frame classified."""

    state: str
    since: datetime
    seen: datetime


class AnalyticsBusy(Exception):
    """Too many analyses run at once (the route answers 429)."""


class AnalyticsStore(TableStore):
    """The ``rig_states`` table, and the stored frames of a range (for the quality checks)."""

    async def write_rig_states(self, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        """Add intervals (``id``, ``source``, ``start_time``, ``end_time``, ``state``) and move the
        ``end_time`` of intervals written before (``b_id``, ``b_end``), in one transaction."""
        if not inserts and not updates:
            return
        async with self._db.write("write the rig states to") as conn:
            if inserts:
                await conn.execute(insert(rig_states), inserts)
            if updates:
                stmt = (
                    update(rig_states)
                    .where(rig_states.c.id == bindparam("b_id"))
                    .values(end_time=bindparam("b_end"))
                )
                await conn.execute(stmt, updates)

    async def stored_rig_states(
        self, source: str, start: datetime, end: datetime, limit: int
    ) -> list[StateInterval]:
        """The stored intervals of ``source`` that overlap ``[start, end)``, oldest first, clipped to
        it; at most ``limit`` (+1, so the caller can tell there are more)."""
        t = rig_states.c
        cols = (t.start_time, t.end_time, t.state)
        before = (
            select(*cols)
            .where(t.source == source, t.start_time < start)
            .order_by(t.start_time.desc())
            .limit(1)
        )
        within = (
            select(*cols)
            .where(t.source == source, t.start_time >= start, t.start_time < end)
            .order_by(t.start_time)
            .limit(limit + 1)
        )
        async with self._db.read("read the rig states of") as conn:
            first = (await conn.execute(before)).all()
            rows = (await conn.execute(within)).all()
        out: list[StateInterval] = []
        for s, e, state in [*first, *rows]:
            if e < start:
                continue  # the interval before the range ended before it
            if out and s < out[-1].end and e <= out[-1].end:
                continue  # inside the one before (a feed replayed twice): told once
            out.append(StateInterval(max(s, start, out[-1].end if out else s), min(e, end), str(state)))
        return out

    async def last_rig_states(self) -> dict[str, StateInterval]:
        """The newest stored interval of every source (what a serving-only process shows as current)."""
        t = rig_states.c
        newest = select(t.source, _max(t.start_time).label("newest")).group_by(t.source).subquery()
        stmt = select(t.source, t.start_time, t.end_time, t.state).join(
            newest, (t.source == newest.c.source) & (t.start_time == newest.c.newest)
        )
        async with self._db.read("read the rig states of") as conn:
            rows = (await conn.execute(stmt)).all()
        return {str(src): StateInterval(s, e, str(state)) for src, s, e, state in rows}

    async def stored_frames(
        self, source: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[WITSFrame]]:
        """Pages of ``source``'s stored frames in ``[start, end)`` (see
        :func:`~witskit.storage.frame_scan.scan_frames`)."""
        async for page in scan_frames(self._db, source, start=start, end=end):
            yield page


def _max(column: Any) -> Any:
    from sqlalchemy import func

    return func.max(column)


class _Open:
    """The open (or just closed, unwritten) interval of one rig."""

    __slots__ = ("end", "id", "source", "start", "state", "written")

    def __init__(self, source: str, start: datetime, state: str) -> None:
        self.id = uuid.uuid4().hex
        self.source = source
        self.start = start
        self.end = start
        self.state = state
        self.written = False


class _Rig:
    __slots__ = ("classifier", "current", "max_gap")

    def __init__(self, settings: RigStateSettings) -> None:
        self.classifier = RigStateClassifier(settings)
        self.current: _Open | None = None
        self.max_gap = timedelta(seconds=settings.max_gap)


_T = TypeVar("_T")


class LiveAnalytics:
    """The rigs' live states and the settings the routes classify with (see the module docstring).

    ``settings`` maps source names to their :class:`RigStateSettings`; other sources get
    ``RigStateSettings(metric=metric)``. ``store`` holds the ``rig_states`` table; ``decoder``
    makes the decoder stored frames are read back with. ``live`` is False in a process that only
    serves: there the current states are the newest stored ones (read at most every 2 s).
    """

    def __init__(
        self,
        tables: AnalyticsStore,
        store: Store,
        *,
        metric: bool,
        decoder: Callable[[], WITSDecoder],
        settings: Mapping[str, RigStateSettings] | None = None,
        live: bool = True,
    ) -> None:
        self.tables = tables
        self.store = store
        self.metric = metric
        self.decoder = decoder
        self.live = live
        self._settings = dict(settings or {})
        self._rigs: dict[str, _Rig] = {}
        self._dirty: dict[str, _Open] = {}
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Semaphore(MAX_RUNNING)
        self._waiting = 0
        #: Seconds an analysis waits for its turn before it is refused (:class:`AnalyticsBusy`).
        self.wait_for_turn = WAIT_FOR_TURN
        self._stored: dict[str, StateInterval] = {}
        self._stored_at = float("-inf")
        self._failing_since: float | None = None

    # Settings ---------------------------------------------------------------------------------
    def configure(self, source: str, settings: RigStateSettings) -> None:
        """Use ``settings`` for ``source`` (a rig of the pipeline file with a ``rig_state:``)."""
        self._settings[source] = settings
        self._rigs.pop(source, None)

    def settings_for(self, source: str) -> RigStateSettings:
        """The classifier settings of ``source``."""
        found = self._settings.get(source)
        return found if found is not None else RigStateSettings(metric=self.metric)

    # Live -------------------------------------------------------------------------------------
    def on_frame(self, frame: DecodedFrame) -> None:
        """A decoded frame (hot path): a record-1 frame moves its rig's state on."""
        codes = frame.codes
        if not codes or not codes[0].startswith("01"):
            return
        source = frame.source if frame.source is not None else DEFAULT_SOURCE
        rig = self._rigs.get(source)
        if rig is None:
            rig = self._rigs[source] = _Rig(self.settings_for(source))
        state = rig.classifier.feed(frame)
        if state is None:
            return
        t = frame.timestamp
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        cur = rig.current
        if cur is not None and t < cur.end:
            return  # time went backwards: the intervals stay as they are
        value = state.value
        if cur is None or cur.state != value or t - cur.end > rig.max_gap:
            if cur is not None and t - cur.end <= rig.max_gap:
                cur.end = t  # the old state lasted until this frame
                self._dirty[cur.id] = cur
            cur = rig.current = _Open(source, t, value)
        else:
            cur.end = t
        self._dirty[cur.id] = cur
        if len(self._dirty) > MAX_PENDING:
            self._drop()

    def _drop(self) -> None:
        excess = len(self._dirty) - MAX_PENDING
        for key in list(self._dirty)[:excess]:
            del self._dirty[key]
        self.dropped += excess
        log.warning(
            "rig states: %d intervals wait for the database, the oldest %d dropped (%d in all)",
            MAX_PENDING,
            excess,
            self.dropped,
        )

    async def current(self) -> dict[str, CurrentState]:
        """The state of every rig now: live ones from memory, the others from the table."""
        out: dict[str, CurrentState] = {}
        if not self.live or not self._rigs:
            if time.monotonic() - self._stored_at >= 2.0:
                self._stored = await self.tables.last_rig_states()
                self._stored_at = time.monotonic()
            out = {s: CurrentState(i.state, i.start, i.end) for s, i in self._stored.items()}
        for source, rig in self._rigs.items():
            cur = rig.current
            if cur is not None:
                out[source] = CurrentState(cur.state, cur.start, cur.end)
        return out

    # Writing ----------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what changed since the last flush (one transaction); kept for the next on failure."""
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, {}
        inserts = [
            {"id": o.id, "source": o.source, "start_time": o.start, "end_time": o.end, "state": o.state}
            for o in batch.values()
            if not o.written
        ]
        updates = [{"b_id": o.id, "b_end": o.end} for o in batch.values() if o.written]
        fresh = [o for o in batch.values() if not o.written]
        for o in fresh:
            o.written = True
        try:
            await self.tables.write_rig_states(inserts, updates)
        except BaseException:
            for o in fresh:
                o.written = False
            self._dirty = {**batch, **self._dirty}
            raise
        self._failing_since = None

    def start(self) -> None:
        """Start writing the live states every :data:`FLUSH_EVERY` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="witskit-rig-states")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
            except StorageError as exc:
                now = time.monotonic()
                if self._failing_since is None or now - self._failing_since >= 60.0:
                    self._failing_since = now
                    log.warning("rig states cannot be written (%s): %d intervals wait", exc, len(self._dirty))

    async def aclose(self) -> None:
        """Stop the writer and write what is left (best effort: the database may be down)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self.flush()
            except StorageError as exc:
                log.warning("rig states: %d intervals not written at shutdown (%s)", len(self._dirty), exc)

    # Analyses over stored ranges --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """One of the :data:`MAX_RUNNING` analyses, waiting up to :attr:`wait_for_turn` seconds for
        its turn behind at most :data:`MAX_WAITING` others; :class:`AnalyticsBusy` beyond."""
        busy = AnalyticsBusy(f"{MAX_RUNNING} analyses are running and others wait; try again shortly")
        if self._waiting >= MAX_WAITING:
            raise busy
        self._waiting += 1
        try:
            await asyncio.wait_for(self._running.acquire(), self.wait_for_turn)
        except TimeoutError:
            raise busy from None
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._running.release()

    async def classify_stored(
        self, source: str, start: datetime, end: datetime, consume: Callable[[Iterator[StateSample]], _T]
    ) -> _T:
        """``consume`` (run in a worker thread) over the classified record-1 frames of ``source`` in
        ``[start, end)``, read from the stored points batch by batch."""
        scan = await self.store.scan(source, list(RIG_STATE_CODES), start, end)
        loop = asyncio.get_running_loop()
        settings = self.settings_for(source)
        stop = threading.Event()

        def work() -> _T:
            return consume(classify(_samples(_pull(scan, loop, stop)), settings))

        worker = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(worker)
        except asyncio.CancelledError:
            # The client went away: the thread stops at its next batch, before the scan is closed
            # (the scan must not be read and closed at once).
            stop.set()
            with contextlib.suppress(Exception):
                await worker
            raise
        finally:
            await scan.aclose()

    async def computed_intervals(
        self, source: str, start: datetime, end: datetime, limit: int
    ) -> list[StateInterval]:
        """The states of ``[start, end)`` classified from the stored points (at most ``limit`` + 1)."""
        gap = timedelta(seconds=self.settings_for(source).max_gap)
        return await self.classify_stored(source, start, end, lambda rows: _intervals(rows, gap, limit))


def _pull(scan: PointScan, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> Iterator[list[Any]]:
    """The batches of an async scan, read from a worker thread (each fetched on the event loop),
    until the scan ends or ``stop`` is set."""
    batches = aiter(scan)

    async def following() -> list[Any] | None:
        return await anext(batches, None)

    while not stop.is_set():
        batch = asyncio.run_coroutine_threadsafe(following(), loop).result()
        if batch is None:
            return
        yield batch


def _samples(batches: Iterator[list[Any]]) -> Iterator[Sample]:
    """Stored points ``(source id, µs, code, number, text, frame key, index)`` grouped into frames."""
    ints = integer_codes()
    values: dict[str, Value] = {}
    current: tuple[int, int] | None = None
    for batch in batches:
        for _sid, us, code, num, txt, key, _idx in batch:
            if (us, key) != current:
                if current is not None and values:
                    yield Sample(from_micros(current[0]), values)
                current = (us, key)
                values = {}
            values[code] = stored_value(code, num, txt, ints)
    if current is not None and values:
        yield Sample(from_micros(current[0]), values)


def _intervals(rows: Iterator[StateSample], max_gap: timedelta, limit: int) -> list[StateInterval]:
    """Runs of one state (split where frames are more than ``max_gap`` apart); ``limit`` + 1 at most."""
    out: list[StateInterval] = []
    start: datetime | None = None
    last: datetime | None = None
    state = ""
    for row in rows:
        t = row.time
        if last is not None and t < last:
            continue
        value = row.state.value
        if start is None or last is None or value != state or t - last > max_gap:
            if start is not None and last is not None:
                out.append(StateInterval(start, t if t - last <= max_gap else last, state))
                if len(out) > limit:
                    return out
            start, state = t, value
        last = t
    if start is not None and last is not None:
        out.append(StateInterval(start, last, state))
    return out


#: The states, in the order the dashboard's legend shows them.
STATES: Final = tuple(s.value for s in RigState)
