"""Time-range exports: stored points streamed as JSON, JSON Lines or CSV, with keyset pagination.

Rows come from :meth:`Store.scan <witskit.storage.store.Store.scan>` (a server-side cursor,
constant memory) as raw tuples and leave as one chunk per batch, so a million-point export never
sits in memory. Formatting is the hot loop; :class:`~witskit.storage.formats.PointText` builds the
text straight from the tuples (a frame's time is formatted once, a code's mnemonic looked up once).

Pagination is by position, not offset: a cursor names the last row sent (time, source, frame key,
line), and the next page starts right after it, however much data arrives meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from witskit.errors import UsageError
from witskit.storage.formats import CSV_COLUMNS, PointText
from witskit.storage.query import RawPoint
from witskit.storage.schema import from_micros

__all__ = [
    "CSV_HEADER",
    "Cursor",
    "Page",
    "after_cursor",
    "csv_chunks",
    "json_chunks",
    "jsonl_chunks",
    "limited",
]

#: WitsKit's one CSV layout (:data:`witskit.storage.formats.CSV_COLUMNS`).
CSV_HEADER: Final = CSV_COLUMNS


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position of a row: pages continue right after it."""

    time_us: int
    source: str
    frame_key: int
    idx: int

    @classmethod
    def of(cls, row: RawPoint, names: dict[int, str]) -> Cursor:
        """The position of ``row`` (``names``: source id to name)."""
        return cls(row[1], names.get(row[0], f"#{row[0]}"), row[5], row[6])

    def encode(self) -> str:
        """An opaque URL-safe token."""
        raw = json.dumps([self.time_us, self.source, self.frame_key, self.idx], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor in a token, or :class:`UsageError`."""
        try:
            padded = token + "=" * (-len(token) % 4)
            t, s, k, i = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if not (isinstance(t, int) and isinstance(s, str) and isinstance(k, int) and isinstance(i, int)):
                raise ValueError
            from_micros(t)  # in range
            return cls(t, s, k, i)
        except (ValueError, TypeError, OverflowError, binascii.Error):
            raise UsageError("cursor is not one this service issued") from None

    @property
    def time(self) -> datetime:
        """The row's time."""
        return from_micros(self.time_us)


async def after_cursor(
    rows: AsyncIterator[list[RawPoint]], cursor: Cursor | None, names: dict[int, str]
) -> AsyncIterator[list[RawPoint]]:
    """Batches with every row up to and including ``cursor`` left out.

    The query starts at the cursor's time (inclusive); rows of that same time come in the same
    order every time, so they are skipped until the cursor's own row has gone by.
    """
    if cursor is None:
        async for batch in rows:
            yield batch
        return
    skipping = True
    at = cursor.time_us
    sids = {sid for sid, name in names.items() if name == cursor.source}
    async for batch in rows:
        if not skipping:
            yield batch
            continue
        for i, (sid, us, _code, _num, _txt, key, idx) in enumerate(batch):
            if us > at:
                start = i  # the cursor row is gone (it cannot be, but never skip forever)
            elif sid in sids and key == cursor.frame_key and idx == cursor.idx:
                start = i + 1
            else:
                continue
            skipping = False
            rest = batch[start:]
            if rest:
                yield rest
            break


@dataclass
class Page:
    """How an export ends: rows sent and, when a limit cut it short, where the next page starts."""

    count: int = 0
    next_cursor: str | None = None


async def limited(
    batches: AsyncIterator[list[RawPoint]], limit: int | None, page: Page, names: dict[int, str]
) -> AsyncIterator[list[RawPoint]]:
    """At most ``limit`` rows; when more exist, ``page.next_cursor`` is set after the last one sent."""
    last: RawPoint | None = None
    async for batch in batches:
        if limit is not None and page.count + len(batch) > limit:
            take = batch[: limit - page.count]
            if take:
                page.count += len(take)
                last = take[-1]
                yield take
            if last is not None:
                page.next_cursor = Cursor.of(last, names).encode()
            return
        page.count += len(batch)
        if batch:
            last = batch[-1]
        yield batch


async def json_chunks(
    batches: AsyncIterator[list[RawPoint]], page: Page, meta: dict[str, Any], names: dict[int, str]
) -> AsyncIterator[bytes]:
    """``{"rows": [...], "count": N, "next_cursor": ...}`` plus ``meta``, streamed."""
    fmt = PointText(names)
    dumps = json.dumps
    head = dumps(meta, separators=(",", ":"))[:-1]
    yield (head + ("," if len(meta) else "") + '"rows":[').encode()
    first = True
    async for batch in batches:
        if not batch:
            continue
        body = ",".join(fmt.jsonl(batch))
        yield (body if first else "," + body).encode()
        first = False
    tail = {"count": page.count, "next_cursor": page.next_cursor}
    yield ("]," + dumps(tail, separators=(",", ":"))[1:]).encode()


async def jsonl_chunks(batches: AsyncIterator[list[RawPoint]], names: dict[int, str]) -> AsyncIterator[bytes]:
    """One JSON object per line."""
    fmt = PointText(names)
    async for batch in batches:
        if batch:
            lines = fmt.jsonl(batch)
            lines.append("")
            yield "\n".join(lines).encode()


async def csv_chunks(
    batches: AsyncIterator[list[RawPoint]], names: dict[int, str], *, metric: bool = False
) -> AsyncIterator[bytes]:
    """CSV with a header line (:data:`CSV_HEADER`); text values are quoted as needed (as the csv
    module does) and neutralised against spreadsheet formulas; units of the rig's system."""
    fmt = PointText(names, metric=metric)
    yield (",".join(CSV_HEADER) + "\n").encode()
    async for batch in batches:
        if batch:
            yield fmt.csv(batch).encode()
