"""Time-range exports: stored points streamed as JSON, JSON Lines or CSV, with keyset pagination.

Rows come from :meth:`Store.query_batches <witskit.storage.store.Store.query_batches>` (a server-side
cursor, constant memory) and leave as one chunk per batch, so a million-point export never sits in
memory. Formatting is the hot loop: a frame's points share one time, so each time is formatted
once, and mnemonics are looked up once per code.

Pagination is by position, not offset: a cursor names the last row sent (time, source, frame key,
line), and the next page starts right after it, however much data arrives meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from witskit.errors import UsageError
from witskit.storage.query import PointRow
from witskit.storage.schema import from_micros, to_micros
from witskit.symbols import default_table

__all__ = [
    "CSV_HEADER",
    "Cursor",
    "Page",
    "RowFormatter",
    "after_cursor",
    "csv_chunks",
    "json_chunks",
    "jsonl_chunks",
    "limited",
]

CSV_HEADER: Final = ("time", "source", "code", "name", "value")


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position of a row: pages continue right after it."""

    time_us: int
    source: str
    frame_key: int
    idx: int

    @classmethod
    def of(cls, row: PointRow) -> Cursor:
        """The position of ``row``."""
        return cls(to_micros(row.time), row.source, row.frame_key, row.idx)

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
    rows: AsyncIterator[list[PointRow]], cursor: Cursor | None
) -> AsyncIterator[list[PointRow]]:
    """Batches with every row up to and including ``cursor`` left out.

    The query starts at the cursor's time (inclusive); rows of that same time come in the same
    order every time, so they are skipped until the cursor's own row has gone by.
    """
    if cursor is None:
        async for batch in rows:
            yield batch
        return
    skipping = True
    at = cursor.time
    async for batch in rows:
        if not skipping:
            yield batch
            continue
        for i, row in enumerate(batch):
            if row.time > at:
                start = i  # the cursor row is gone (it cannot be, but never skip forever)
            elif row.source == cursor.source and row.frame_key == cursor.frame_key and row.idx == cursor.idx:
                start = i + 1
            else:
                continue
            skipping = False
            rest = batch[start:]
            if rest:
                yield rest
            break


class RowFormatter:
    """Caches what rows of one export share: time strings, mnemonics."""

    def __init__(self) -> None:
        self._last_time: datetime | None = None
        self._last_text = ""
        self._names: dict[str, str] = {}
        self._table = default_table()

    def time(self, ts: datetime) -> str:
        """ISO 8601 with offset, formatted once per distinct time."""
        if ts != self._last_time:
            self._last_time = ts
            self._last_text = ts.isoformat()
        return self._last_text

    def name(self, code: str) -> str:
        """The short mnemonic of a code."""
        name = self._names.get(code)
        if name is None:
            sym = self._table.get(code)
            name = self._names[code] = sym.name if sym is not None else f"U{code}"
        return name


@dataclass
class Page:
    """How an export ends: rows sent and, when a limit cut it short, where the next page starts."""

    count: int = 0
    next_cursor: str | None = None


async def limited(
    batches: AsyncIterator[list[PointRow]], limit: int | None, page: Page
) -> AsyncIterator[list[PointRow]]:
    """At most ``limit`` rows; when more exist, ``page.next_cursor`` is set after the last one sent."""
    last: PointRow | None = None
    async for batch in batches:
        if limit is not None and page.count + len(batch) > limit:
            take = batch[: limit - page.count]
            if take:
                page.count += len(take)
                last = take[-1]
                yield take
            if last is not None:
                page.next_cursor = Cursor.of(last).encode()
            return
        page.count += len(batch)
        if batch:
            last = batch[-1]
        yield batch


def _json_rows(batch: list[PointRow], fmt: RowFormatter) -> list[dict[str, Any]]:
    t, n = fmt.time, fmt.name
    return [
        {"time": t(r.time), "source": r.source, "code": r.code, "name": n(r.code), "value": r.value}
        for r in batch
    ]


async def json_chunks(
    batches: AsyncIterator[list[PointRow]], page: Page, meta: dict[str, Any]
) -> AsyncIterator[bytes]:
    """``{"rows": [...], "count": N, "next_cursor": ...}`` plus ``meta``, streamed."""
    fmt = RowFormatter()
    dumps = json.dumps
    head = dumps(meta, separators=(",", ":"))[:-1]
    yield (head + ("," if len(meta) else "") + '"rows":[').encode()
    first = True
    async for batch in batches:
        if not batch:
            continue
        body = dumps(_json_rows(batch, fmt), separators=(",", ":"))[1:-1]
        yield (body if first else "," + body).encode()
        first = False
    tail = {"count": page.count, "next_cursor": page.next_cursor}
    yield ("]," + dumps(tail, separators=(",", ":"))[1:]).encode()


async def jsonl_chunks(batches: AsyncIterator[list[PointRow]]) -> AsyncIterator[bytes]:
    """One JSON object per line."""
    fmt = RowFormatter()
    dumps = json.dumps
    async for batch in batches:
        if batch:
            lines = [dumps(row, separators=(",", ":")) for row in _json_rows(batch, fmt)]
            yield ("\n".join(lines) + "\n").encode()


async def csv_chunks(batches: AsyncIterator[list[PointRow]]) -> AsyncIterator[bytes]:
    """CSV with a header line; text values are quoted as needed by the csv module."""
    fmt = RowFormatter()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    yield out.getvalue().encode()
    t, n = fmt.time, fmt.name
    async for batch in batches:
        if not batch:
            continue
        out.seek(0)
        out.truncate()
        writer.writerows(
            [(t(r.time), r.source, r.code, n(r.code), "" if r.value is None else r.value) for r in batch]
        )
        yield out.getvalue().encode()
