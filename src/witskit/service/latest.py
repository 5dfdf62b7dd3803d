"""The newest value of every code of every source, for the ``latest`` route.

In a process that ingests (``witskit run``) every decoded frame updates the cache as it arrives,
before it is even committed, so the route answers from memory: a dashboard polling 100 rigs costs
no database work. The first request for a source also loads what the store already holds (codes
that have not been sent since the start, such as a record-8 item sent once an hour), and a stored
value never replaces a newer live one.

In a process that only serves (``witskit serve``) another process writes the store. There a
source's values are re-read when the store says the source has new frames: the frame counts of
every source are read in one query at most every ``ttl`` seconds, and only sources whose count
changed are loaded again. Values are then at most about ``ttl`` seconds old, and a store that is
not being written costs one small query per ``ttl``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from witskit.protocol import DecodedFrame
from witskit.protocol.decoder import Value
from witskit.storage.schema import DEFAULT_SOURCE
from witskit.storage.store import Store

__all__ = ["LatestCache", "LatestValues"]

#: code -> (time, value)
LatestValues = dict[str, tuple[datetime, Value]]


class LatestCache:
    """Latest values per source: live updates plus the store (see the module docstring)."""

    def __init__(self, store: Store, *, ttl: float | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self._values: dict[str, LatestValues] = {}
        self._loaded: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Serving only: frame counts per source, as of the last load and as the store says now.
        self._counts: dict[str, int] = {}
        self._snapshot: dict[str, int] = {}
        self._snapshot_at = float("-inf")
        self._snapshot_lock = asyncio.Lock()

    def update(self, frame: DecodedFrame) -> None:
        """Take the values of a frame just decoded (called for every frame: keep it cheap)."""
        source = frame.source if frame.source is not None else DEFAULT_SOURCE
        ts = frame.timestamp
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        values = self._values.get(source)
        if values is None:
            values = self._values[source] = {}
        for code, value in frame.items():
            old = values.get(code)
            if old is None or old[0] <= ts:
                values[code] = (ts, value)

    def _fresh(self, source: str) -> bool:
        loaded = self._loaded.get(source)
        if loaded is None:
            return False
        return self.ttl is None or time.monotonic() - loaded < self.ttl

    async def get(self, source: str) -> LatestValues | None:
        """The source's latest values, or None when the source is unknown."""
        if not self._fresh(source):
            lock = self._locks.get(source)
            if lock is None:
                lock = self._locks[source] = asyncio.Lock()
            async with lock:  # one load per source, however many requests wait for it
                if not self._fresh(source):
                    await self._refresh(source)
        values = self._values.get(source)
        return dict(values) if values else None

    async def _frame_counts(self) -> dict[str, int]:
        assert self.ttl is not None
        if time.monotonic() - self._snapshot_at >= self.ttl:
            async with self._snapshot_lock:
                if time.monotonic() - self._snapshot_at >= self.ttl:
                    self._snapshot = {s.name: s.frame_count for s in await self.store.sources()}
                    self._snapshot_at = time.monotonic()
        return self._snapshot

    async def _refresh(self, source: str) -> None:
        if self.ttl is None:
            await self._load(source)
            return
        count = (await self._frame_counts()).get(source)
        if source in self._loaded and count == self._counts.get(source):
            self._loaded[source] = time.monotonic()  # nothing new since the last load
            return
        if count is not None:
            # Taken before the load: frames written meanwhile make the next check load again.
            self._counts[source] = count
        await self._load(source)

    async def _load(self, source: str) -> None:
        stored = await self.store.latest(source)
        if not stored and source not in self._values:
            # Unknown: remember nothing, so that random names cannot grow the cache.
            self._locks.pop(source, None)
            return
        if self.ttl is not None:
            self._values[source] = dict(stored)
        else:
            values = self._values.setdefault(source, {})
            for code, (ts, value) in stored.items():
                old = values.get(code)
                if old is None or old[0] < ts:
                    values[code] = (ts, value)
        self._loaded[source] = time.monotonic()
