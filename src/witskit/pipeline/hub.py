"""Fan decoded frames out to live subscribers (WebSockets, the dashboard) without slowing ingest.

Subscribers also receive the :class:`~witskit.errors.FrameError` events of their sources (bad bytes
the parser skipped), so a live view can count them, and the
:class:`~witskit.analytics.alarms.AlarmEvent` s (an alarm firing or clearing) of their sources.

Each subscriber has a small bounded queue; when a subscriber falls behind, its oldest frames are
dropped and counted (a live view wants the newest data; the database has everything).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from witskit.analytics.alarms import AlarmEvent
from witskit.errors import FrameError
from witskit.protocol import DecodedFrame

__all__ = ["LiveEvent", "LiveHub", "Subscription"]

#: What a subscriber receives.
LiveEvent = DecodedFrame | FrameError | AlarmEvent

#: Frames a subscriber may lag before the oldest are dropped: a few seconds of a busy rig.
DEFAULT_SUBSCRIBER_QUEUE = 256


class Subscription:
    """One subscriber's view: ``async for frame in subscription``; ``close()`` to leave."""

    def __init__(self, hub: LiveHub, source: str | None, maxsize: int) -> None:
        self._hub = hub
        self.source = source
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.closed = False

    def _offer(self, frame: LiveEvent) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[LiveEvent]:
        while True:
            if self.closed and self.queue.empty():
                return
            frame = await self.queue.get()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        """Stop receiving; an iteration delivers what is already queued, then ends."""
        self.closed = True
        self._hub._subscribers.discard(self)
        with contextlib.suppress(asyncio.QueueFull):  # full: the iterator sees closed + empty later
            self.queue.put_nowait(None)  # wakes an iterator waiting on an empty queue


class LiveHub:
    """Publish decoded frames; subscribe to all sources or one."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.published = 0

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are listening."""
        return len(self._subscribers)

    def publish(self, frame: DecodedFrame) -> None:
        """Offer a frame to every matching subscriber (never blocks)."""
        self.published += 1
        for sub in tuple(self._subscribers):
            if sub.source is None or sub.source == frame.source:
                sub._offer(frame)

    def publish_error(self, error: FrameError) -> None:
        """Offer a FrameError (bad bytes a source's parser skipped) to matching subscribers."""
        for sub in tuple(self._subscribers):
            if sub.source is None or sub.source == error.source:
                sub._offer(error)

    def publish_alarm(self, event: AlarmEvent) -> None:
        """Offer an alarm's firing or clearing to matching subscribers (never blocks).

        Like a frame, it takes the place of the oldest queued event of a subscriber that lags: a
        client that falls that far behind reloads the active alarms (``GET /api/v1/alarms``).
        """
        for sub in tuple(self._subscribers):
            if sub.source is None or sub.source == event.source:
                sub._offer(event)

    def subscribe(
        self, source: str | None = None, *, maxsize: int = DEFAULT_SUBSCRIBER_QUEUE
    ) -> Subscription:
        """A new subscription to one source's frames (or all when ``source`` is None)."""
        sub = Subscription(self, source, maxsize)
        self._subscribers.add(sub)
        return sub

    def close(self) -> None:
        """End every subscription."""
        for sub in tuple(self._subscribers):
            sub.close()
