"""Live frames for ``witskit serve``: follow the store that another process writes.

``witskit run`` publishes each frame to the :class:`~witskit.pipeline.LiveHub` as it decodes it. A
process that only serves has no pipeline, so :class:`FrameTailer` polls the database instead and
publishes what it finds into the same hub: the WebSocket code and its messages are the same.

* Only sources that someone is subscribed to are followed, and nothing is queried while nobody is
  subscribed. A source is followed from "now" (its newest stored frame) when its first subscriber
  arrives, never from the beginning of its history. A source that does not exist yet when
  subscribed to (or, for a subscription to every source, that appears later) is followed from its
  first frame.
* Every ``interval`` seconds one small query reads the frame counts of the sources; only a source
  whose count changed is asked for its new frames, through the index on frames (source, frame time)
  of revision 0003.
* Frames are read in (frame time, receive time) order. The watermark of a source is the newest pair
  read and the keys of the frames read at exactly that pair, so frames that share a frame time (the
  records of one rig timestamp, committed in different transactions, or a rig whose clock is stuck)
  are each published once. A frame committed later with an older frame time than one already
  published (a backfill) is not live data: it is in the store, not on the WebSocket.
* The raw bytes are decoded with the same decoder the pipeline uses; the frame time is the one the
  writer stored (it may have decoded DATE/TIME in another zone). Bad bytes between frames are not
  stored, so ``frame_error`` messages exist only in ``witskit run``.
* A database error is logged and retried with a growing delay (up to :data:`MAX_BACKOFF`); it never
  ends the tailer, and subscribers simply wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.errors import UsageError
from witskit.pipeline import LiveHub, Subscription
from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame
from witskit.storage.database import Database
from witskit.storage.schema import frames, sources

__all__ = ["DEFAULT_INTERVAL", "MAX_BACKOFF", "FrameTailer"]

log = logging.getLogger("witskit.service.tailer")

#: Seconds between two looks at the database: live enough for a wallboard (rigs send about once a
#: second), and one small query per interval costs the database nothing.
DEFAULT_INTERVAL: Final = 0.5
#: Longest wait between two attempts while the database fails.
MAX_BACKOFF: Final = 10.0
#: Frames read per query. A rig sends a few per second; a full batch means the tailer is behind
#: (a burst, or a writer catching up on its spool) and reads again at once.
BATCH: Final = 500
#: Batches per source per look, so that one busy source cannot hold up the others.
_BATCHES_PER_LOOK: Final = 4


@dataclass(slots=True)
class _Mark:
    """How far a source has been read (see the module docstring)."""

    source_id: int
    frame_count: int
    time: datetime | None = None  # None: from the source's first frame
    received: datetime | None = None
    keys: set[int] = field(default_factory=set)
    behind: bool = False


class FrameTailer:
    """Publishes frames that another process stores into ``hub`` (see the module docstring).

    Subscriptions are announced with :meth:`follow`; the polling task starts with the first one
    and stops in :meth:`aclose`.
    """

    def __init__(
        self,
        db: Database,
        hub: LiveHub,
        decoder: WITSDecoder,
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        """Use :meth:`open`."""
        if not interval > 0:
            raise UsageError(f"the live poll interval must be positive, got {interval!r}")
        self._db = db
        self._engine = db.engine  # its pool and event hooks (tests count the queries)
        self.hub = hub
        self.decoder = decoder
        self.interval = interval
        self._subs: set[Subscription] = set()
        self._marks: dict[str, _Mark] = {}
        #: Sources to start at their newest frame at the next look (a failed first look).
        self._need_now: set[str] = set()
        #: Every existing source is to be started at its newest frame (a failed first look).
        self._all_need_now = False
        self._following_all = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        #: Looks that failed in a row (0 while the database answers).
        self.failures = 0

    @classmethod
    def open(
        cls,
        url: Any,
        hub: LiveHub,
        decoder: WITSDecoder,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = 30.0,
    ) -> FrameTailer:
        """A tailer of the database at ``url``, with its own single pooled connection."""
        return cls(Database.open(url, pool_size=1, timeout=timeout), hub, decoder, interval=interval)

    # Subscriptions -------------------------------------------------------------------------------
    async def follow(self, subscription: Subscription) -> None:
        """Publish the frames of ``subscription.source`` (every source when None) from now on.

        Returns once the source's current newest frame is known, so every frame stored after this
        returns reaches the subscription. With the database down, it returns at once and the
        source starts at its newest frame once the database answers again.
        """
        if self._closed:
            raise UsageError("the tailer is closed")
        self._subs.add(subscription)
        if self._task is None or self._task.done():
            # A fresh context: the task must not log with the request id of the first subscriber.
            self._task = asyncio.create_task(
                self._run(), name="witskit-live-tailer", context=contextvars.Context()
            )
        source = subscription.source
        async with self._lock:
            try:
                async with self._connect() as conn:
                    counts = await self._source_counts(conn)
                    if source is None:
                        if not self._following_all:
                            self._following_all = True
                            for name in counts:
                                if name not in self._marks:
                                    self._marks[name] = await self._mark_now(conn, *counts[name])
                    elif source not in self._marks and source in counts:
                        self._marks[source] = await self._mark_now(conn, *counts[source])
            except Exception as exc:
                # The next look does it; the subscriber waits for the database like everyone else.
                log.warning("live frames: cannot read the database yet: %s", exc)
                if source is None:
                    self._following_all = True
                    self._all_need_now = True
                else:
                    self._need_now.add(source)
        self._wake.set()

    def _wanted(self) -> tuple[bool, set[str]]:
        """Every source?, and the sources named by the open subscriptions (closed ones forgotten)."""
        self._subs = {s for s in self._subs if not s.closed}
        every = any(s.source is None for s in self._subs)
        named = {s.source for s in self._subs if s.source is not None}
        if not every:
            self._following_all = False
            self._all_need_now = False
            for name in [n for n in self._marks if n not in named]:
                del self._marks[name]  # a later subscription starts at "now" again
        self._need_now &= named
        return every, named

    # The polling loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before looking: a subscription from now on ends the wait below
            delay: float | None = None  # None: nobody listens, so no queries until someone does
            behind = False
            async with self._lock:
                every, named = self._wanted()
                if every or named:
                    behind, delay = await self._look_safely(every, named)
            if behind:
                await asyncio.sleep(0)  # let the subscribers' senders run, then read on at once
            elif delay is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def _look_safely(self, every: bool, named: set[str]) -> tuple[bool, float]:
        """:meth:`_look`, its errors logged; (behind, seconds until the next look)."""
        try:
            behind = await self._look(every, named)
        except Exception as exc:
            self.failures += 1
            delay = min(self.interval * 2 ** min(self.failures, 16), MAX_BACKOFF)
            # The first failure is a warning; its repeats (every few seconds) would drown the log.
            level = logging.WARNING if self.failures == 1 else logging.DEBUG
            log.log(level, "live frames: reading the database failed (%s); next try in %.1f s", exc, delay)
            return False, delay
        if self.failures:
            log.info("live frames: the database answers again (after %d failures)", self.failures)
            self.failures = 0
        return behind, self.interval

    async def _look(self, every: bool, named: set[str]) -> bool:
        """One look at the database; True when some source has more frames to read at once."""
        behind = False
        async with self._connect() as conn:
            counts = await self._source_counts(conn)
            for name, (source_id, count) in counts.items():
                if not (every or name in named):
                    continue
                mark = self._marks.get(name)
                if mark is None or mark.source_id != source_id:
                    if self._all_need_now or name in self._need_now:
                        self._marks[name] = await self._mark_now(conn, source_id, count)
                        continue
                    # New since the subscription began: every frame of it is new.
                    mark = self._marks[name] = _Mark(source_id, -1)
                if mark.frame_count == count and not mark.behind:
                    continue  # nothing written since the last look: no frame query
                mark.frame_count = count  # read before the frames: a write meanwhile shows next time
                for _ in range(_BATCHES_PER_LOOK):
                    if not await self._read(conn, name, mark):
                        break
                behind = behind or mark.behind
            self._need_now.clear()
            self._all_need_now = False
        return behind

    # Queries -------------------------------------------------------------------------------------
    def _connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._db.read("read live frames from")

    @staticmethod
    async def _source_counts(conn: AsyncConnection) -> dict[str, tuple[int, int]]:
        rows = await conn.execute(select(sources.c.name, sources.c.id, sources.c.frame_count))
        return {str(name): (int(sid), int(count)) for name, sid, count in rows}

    @staticmethod
    async def _mark_now(conn: AsyncConnection, source_id: int, count: int) -> _Mark:
        """A mark at the source's newest stored frame (nothing stored: from its first frame)."""
        f = frames.c
        stmt = (
            select(f.frame_time, f.received_at, f.frame_key)
            .where(f.source_id == source_id)
            .order_by(f.frame_time.desc(), f.received_at.desc())
            .limit(BATCH)
        )
        rows = (await conn.execute(stmt)).all()
        if not rows:
            return _Mark(source_id, count)
        time, received = rows[0][0], rows[0][1]
        keys = {int(k) for t, r, k in rows if t == time and r == received}
        return _Mark(source_id, count, time, received, keys)

    async def _read(self, conn: AsyncConnection, name: str, mark: _Mark) -> bool:
        """Publish the source's next frames after ``mark``; True when a full batch was read."""
        f = frames.c
        stmt = select(f.frame_key, f.frame_time, f.received_at, f.raw).where(f.source_id == mark.source_id)
        if mark.time is not None:
            # Frame time first (the index), then receive time among frames of the same frame time.
            stmt = stmt.where(
                f.frame_time >= mark.time, or_(f.frame_time > mark.time, f.received_at >= mark.received)
            )
        limit = BATCH + len(mark.keys)  # the frames already read at the mark come back too
        stmt = stmt.order_by(f.frame_time, f.received_at).limit(limit)
        rows = (await conn.execute(stmt)).all()
        for stored_key, time, received, raw in rows:
            key = int(stored_key)
            if time == mark.time and received == mark.received:
                if key in mark.keys:
                    continue
                mark.keys.add(key)
            else:
                mark.time, mark.received, mark.keys = time, received, {key}
            frame = self._decode(name, bytes(raw), time, received)
            if frame is not None:
                self.hub.publish(frame)
        mark.behind = len(rows) == limit
        return mark.behind

    def _decode(self, name: str, raw: bytes, time: datetime, received: datetime) -> DecodedFrame | None:
        # One whole frame that a parser already accepted: limits as large as the frame itself.
        size = len(raw) + 1
        parser = FrameParser(
            source=name,
            max_line_length=size,
            max_lines_per_frame=size,
            max_frame_bytes=size,
            max_garbage_bytes=size,
            clock=lambda: received,
        )
        found = [e for e in parser.feed(raw) + parser.close() if isinstance(e, WITSFrame)]
        if len(found) != 1:
            log.warning("live frames: a stored frame of %s at %s does not parse; skipped", name, time)
            return None
        decoded = self.decoder.decode(found[0])
        decoded.timestamp = time  # the writer's frame time, as /data shows it
        return decoded

    # Closing -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop polling (the subscriptions are the hub's to close)."""
        self._stopping = True
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the polling task and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._db.aclose()

    @property
    def following(self) -> Collection[str]:
        """The sources being read (for tests and diagnostics)."""
        return tuple(self._marks)
