"""Stored frames of one source, read back as received: for analyses after the fact.

The store keeps every frame's raw bytes and receive time (``frames``), so a stored range can be
decoded again exactly as it was live, receive time included (what the clock checks of data quality
need). :func:`scan_frames` reads them in pages by frame time (the ``(source_id, frame_time)`` index),
each page a list of :class:`~witskit.protocol.WITSFrame` in the order it was received::

    db = Database.open("sqlite:///wits.db")
    async for page in scan_frames(db, "rig-7", start=day, end=day + timedelta(days=1)):
        for frame in page:
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import and_, or_, select

from witskit.protocol import FrameParser, WITSFrame
from witskit.storage.database import Database
from witskit.storage.schema import frames, sources

__all__ = ["scan_frames"]

#: Frames per page: a few seconds of decoding, a few MB of raw bytes.
DEFAULT_PAGE = 2000


def _parse(source: str, raw: bytes, received: datetime) -> WITSFrame | None:
    parser = FrameParser(source=source, clock=lambda: received)
    found = [e for e in parser.feed(raw) + parser.close() if isinstance(e, WITSFrame)]
    return found[0] if len(found) == 1 else None


async def scan_frames(
    db: Database,
    source: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    page: int = DEFAULT_PAGE,
) -> AsyncIterator[list[WITSFrame]]:
    """Pages of ``source``'s frames with ``start`` <= frame time < ``end``, in frame-time order
    from page to page and in receive order within a page. Nothing when the source is unknown."""
    async with db.read("read the frames of") as conn:
        source_id = (await conn.execute(select(sources.c.id).where(sources.c.name == source))).scalar()
    if source_id is None:
        return
    f = frames.c
    mark: tuple[datetime, int] | None = None
    while True:
        stmt = select(f.frame_time, f.frame_key, f.received_at, f.raw).where(f.source_id == source_id)
        if start is not None:
            stmt = stmt.where(f.frame_time >= start)
        if end is not None:
            stmt = stmt.where(f.frame_time < end)
        if mark is not None:
            after = or_(f.frame_time > mark[0], and_(f.frame_time == mark[0], f.frame_key > mark[1]))
            stmt = stmt.where(after)
        stmt = stmt.order_by(f.frame_time, f.frame_key).limit(page)
        async with db.read("read the frames of") as conn:
            rows = list((await conn.execute(stmt)).all())
        if not rows:
            return
        mark = (rows[-1][0], int(rows[-1][1]))
        rows.sort(key=lambda row: row[2])  # receive order: a clock that went back shows
        parsed = [_parse(source, bytes(raw), received) for _, _, received, raw in rows]
        yield [p for p in parsed if p is not None]
        if len(rows) < page:
            return
