"""Data routes: sources, latest values, time-range data, and the WITS dictionary (``data:read``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from witskit.errors import UsageError
from witskit.security.rbac import Permission
from witskit.service.deps import Context, guard
from witskit.service.export import (
    Cursor,
    Page,
    after_cursor,
    csv_chunks,
    json_chunks,
    jsonl_chunks,
    limited,
)
from witskit.storage.query import PointScan, RawPoint, parse_time, resolve_codes
from witskit.storage.series import DEFAULT_POINTS, MAX_CODES, MAX_POINTS
from witskit.symbols import WITSSymbol, default_table

__all__ = ["router"]

router = APIRouter(tags=["data"])

READ: Final = guard(Permission.READ_DATA)
#: Rows per page of JSON when no limit is given: a few hundred kilobytes.
DEFAULT_JSON_LIMIT: Final = 10_000
#: The largest page: a million rows streams in a few seconds.
MAX_LIMIT: Final = 1_000_000
#: CSV and JSON Lines pages are built before sending (the next cursor goes in a header), so they
#: are bounded; without a limit those formats stream everything.
MAX_BUFFERED_LIMIT: Final = 100_000
#: Sources per latest-values request.
MAX_SOURCES: Final = 200

Scalar = float | int | str | None


class SourceOut(BaseModel):
    """A source in the store."""

    name: str
    first_time: datetime | None
    last_time: datetime | None
    frame_count: int
    point_count: int
    connection: str | None = None
    #: The rig's state now (docs/analytics.md), since when, and its last classified frame's time.
    rig_state: str | None = None
    rig_state_since: datetime | None = None
    rig_state_seen: datetime | None = None
    #: In a fleet (docs/fleet.md): the edge the rig comes through and its last frame's lag from
    #: receive at the edge to commit at the centre (None: not a fleet's rig).
    edge: str | None = None
    lag_seconds: float | None = None


class LatestValue(BaseModel):
    """The newest value of one code."""

    code: str
    name: str
    unit: str
    time: datetime
    value: Scalar


class LatestOut(BaseModel):
    """The newest value of every code of a source."""

    source: str
    values: list[LatestValue]


class CodeSeriesOut(BaseModel):
    """The buckets of one code (only those holding a reading), as columns that line up."""

    code: str
    name: str
    time: list[int]
    count: list[int]
    nulls: list[int]
    min: list[float | None]
    max: list[float | None]
    avg: list[float | None]
    first: list[float | None]
    last: list[float | None]


class SeriesOut(BaseModel):
    """Downsampled data of a source: bucket ``k`` starts at ``start`` + ``k`` x ``bucket_us``.

    ``time`` values are bucket starts in microseconds since 1970-01-01 UTC.
    """

    source: str
    start: datetime | None
    end: datetime | None
    points: int
    bucket_us: int
    series: list[CodeSeriesOut]


class SymbolOut(BaseModel):
    """An item of the WITS dictionary."""

    code: str
    name: str
    long_name: str
    description: str
    data_type: str
    record: int
    item: int
    unit_fps: str
    unit_metric: str

    @classmethod
    def of(cls, sym: WITSSymbol) -> SymbolOut:
        """From a :class:`WITSSymbol`."""
        return cls(
            code=sym.code,
            name=sym.name,
            long_name=sym.long_name,
            description=sym.description,
            data_type=sym.data_type.value,
            record=sym.record_type,
            item=sym.item_number,
            unit_fps=sym.fps_units,
            unit_metric=sym.metric_units,
        )


class ExportFormat(StrEnum):
    """What ``/data`` returns."""

    json = "json"
    jsonl = "jsonl"
    csv = "csv"


_MEDIA: Final = {
    ExportFormat.json: "application/json",
    ExportFormat.jsonl: "application/x-ndjson",
    ExportFormat.csv: "text/csv; charset=utf-8",
}


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


@router.get("/sources", response_model=list[SourceOut], summary="List sources", **READ)
async def list_sources(context: Context) -> list[SourceOut]:
    """Every source in the store, with its time span and counts, its connection state when this
    process ingests it, and the rig's current state (``rig_state``, ``rig_state_since``)."""
    states: dict[str, str] = {}
    if context.connections is not None:
        states = {c.name: c.state for c in context.connections}
    rigs = await context.analytics.current() if context.analytics is not None else {}
    fleet = {r.source: r for r in await context.fleet.rigs()} if context.fleet is not None else {}
    out = []
    for s in await context.store.sources():
        rig = rigs.get(s.name)
        out.append(
            SourceOut(
                name=s.name,
                first_time=s.first_time,
                last_time=s.last_time,
                frame_count=s.frame_count,
                point_count=s.point_count,
                connection=states.get(s.name),
                rig_state=rig.state if rig is not None else None,
                rig_state_since=rig.since if rig is not None else None,
                rig_state_seen=rig.seen if rig is not None else None,
                edge=fleet[s.name].edge if s.name in fleet else None,
                lag_seconds=fleet[s.name].lag_seconds if s.name in fleet else None,
            )
        )
    return out


@router.get(
    "/latest",
    response_model=list[LatestOut],
    summary="Latest values per source",
    **guard(Permission.READ_DATA, responses={404: {"description": "A source asked for is unknown"}}),
)
async def latest(
    context: Context,
    source: Annotated[
        list[str] | None, Query(description="Source name (repeat for several; none: every source)")
    ] = None,
    codes: Annotated[
        list[str] | None, Query(description="Codes or mnemonics, comma-separated or repeated (none: all)")
    ] = None,
) -> list[LatestOut]:
    """The newest value of every code (or of ``codes``) of each source."""
    names = source or [s.name for s in await context.store.sources()]
    if len(names) > MAX_SOURCES:
        raise UsageError(f"at most {MAX_SOURCES} sources per request")
    wanted = set(resolve_codes(_split(codes) or [])) if codes else None
    table = default_table()
    metric = context.metric_units
    out: list[LatestOut] = []
    for name in dict.fromkeys(names):
        values = await context.latest.get(name)
        if values is None:
            if source:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {name!r}")
            continue
        items = []
        for code in sorted(values):
            if wanted is not None and code not in wanted:
                continue
            ts, value = values[code]
            sym = table.get(code)
            items.append(
                LatestValue(
                    code=code,
                    name=sym.name if sym is not None else f"U{code}",
                    unit=sym.unit(metric) if sym is not None else "",
                    time=ts,
                    value=value,
                )
            )
        out.append(LatestOut(source=name, values=items))
    return out


async def _prefetched(first: list[RawPoint] | None, scan: PointScan) -> AsyncIterator[list[RawPoint]]:
    if first is not None:
        yield first
    async for batch in scan:
        yield batch


async def _closing(scan: PointScan, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # Closes the database cursor whether the export ends, fails or the client goes away.
    async with contextlib.aclosing(scan):
        async for chunk in chunks:
            yield chunk


@router.get(
    "/data",
    summary="Time-range data (streamed; JSON, JSON Lines or CSV)",
    response_model=None,
    **guard(
        Permission.READ_DATA,
        responses={
            200: {
                "description": "Points in time order",
                "content": {"application/json": {}, "application/x-ndjson": {}, "text/csv": {}},
            },
            422: {"description": "Bad codes, times, cursor or limit"},
        },
    ),
)
async def data(
    request: Request,
    context: Context,
    source: Annotated[
        list[str] | None, Query(description="Source name (repeat for several; none: all)")
    ] = None,
    codes: Annotated[
        list[str] | None, Query(description="Codes or mnemonics, comma-separated or repeated (none: all)")
    ] = None,
    start: Annotated[str | None, Query(description="Inclusive start, ISO 8601 (naive: UTC)")] = None,
    end: Annotated[str | None, Query(description="Exclusive end, ISO 8601 (naive: UTC)")] = None,
    format: Annotated[ExportFormat, Query(description="json, jsonl or csv")] = ExportFormat.json,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_LIMIT,
            description="Rows per page (json: default 10000; csv/jsonl: none = stream all)",
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="next_cursor of the previous page")
    ] = None,
) -> Response:
    """Stored points of ``source`` and ``codes`` between ``start`` and ``end``, in time order.

    JSON pages are ``{"rows": [...], "count": N, "next_cursor": ...}``; pass ``next_cursor`` back as
    ``cursor`` for the next page (null: no more). CSV and JSON Lines stream every row when no
    ``limit`` is given; with one (at most 100000) the next cursor is in the ``X-Next-Cursor`` and
    ``Link`` headers.
    """
    wanted = resolve_codes(_split(codes) or []) if codes else None
    lo = parse_time(start, "start")
    hi = parse_time(end, "end")
    after = Cursor.decode(cursor) if cursor else None
    if after is not None and (lo is None or after.time > lo):
        lo = after.time
    if format is ExportFormat.json and limit is None:
        limit = DEFAULT_JSON_LIMIT
    buffered = format is not ExportFormat.json and limit is not None
    if buffered and limit is not None and limit > MAX_BUFFERED_LIMIT:
        raise UsageError(
            f"limit must be at most {MAX_BUFFERED_LIMIT} for paginated {format.value}; "
            "omit it to stream every row"
        )
    scan = await context.store.scan(source=source, codes=wanted, start=lo, end=hi)
    try:
        # The first round trip happens now, so a database error is an error response, not a
        # truncated body after a 200.
        first = await anext(aiter(scan), None)
    except BaseException:
        await scan.aclose()
        raise
    page = Page()
    names = scan.names
    rows = limited(after_cursor(_prefetched(first, scan), after, names), limit, page, names)
    media = _MEDIA[format]
    if format is ExportFormat.json:
        meta: dict[str, Any] = {"source": source, "codes": wanted, "start": start, "end": end}
        return StreamingResponse(_closing(scan, json_chunks(rows, page, meta, names)), media_type=media)
    if format is ExportFormat.csv:
        chunks = csv_chunks(rows, names, metric=context.metric_units)
    else:
        chunks = jsonl_chunks(rows, names)
    if not buffered:
        return StreamingResponse(_closing(scan, chunks), media_type=media)
    body = b"".join([chunk async for chunk in _closing(scan, chunks)])
    headers = {"X-Row-Count": str(page.count)}
    if page.next_cursor is not None:
        headers["X-Next-Cursor"] = page.next_cursor
        nxt = request.url.include_query_params(cursor=page.next_cursor)
        headers["Link"] = f'<{nxt}>; rel="next"'
    return Response(body, media_type=media, headers=headers)


@router.get(
    "/data/series",
    response_model=SeriesOut,
    summary="Downsampled time-range data: min, max, avg, first, last per time bucket",
    **guard(
        Permission.READ_DATA,
        responses={
            404: {"description": "Unknown source"},
            422: {"description": "Bad codes, times or points"},
        },
    ),
)
async def data_series(
    context: Context,
    source: Annotated[str, Query(min_length=1, max_length=255, description="Source name")],
    codes: Annotated[
        list[str] | None,
        Query(
            description=f"Codes or mnemonics, comma-separated or repeated (none: all; at most {MAX_CODES})"
        ),
    ] = None,
    start: Annotated[
        str | None, Query(description="Inclusive start, ISO 8601 (naive: UTC; none: the first stored time)")
    ] = None,
    end: Annotated[
        str | None,
        Query(description="Exclusive end, ISO 8601 (naive: UTC; none: just after the last stored time)"),
    ] = None,
    points: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_POINTS,
            description="Buckets across [start, end): each is (end - start) / points wide",
        ),
    ] = DEFAULT_POINTS,
) -> SeriesOut:
    """``[start, end)`` cut into ``points`` buckets of equal width; per code, each bucket that holds
    a reading, with the ``min``, ``max``, ``avg``, ``first`` and ``last`` of its numeric values, how
    many numeric readings it holds (``count``) and how many null readings (``nulls``).

    The database aggregates: a month of 1 Hz data comes back as ``points`` buckets per code, for a
    chart that draws a min/max band and a line. Buckets without readings are left out; text
    values are skipped. ``time`` holds each bucket's start in microseconds since 1970-01-01 UTC,
    ``bucket_us`` the bucket width.
    """
    wanted = resolve_codes(_split(codes) or []) if codes else None
    # No source can have a NUL in its name (writes refuse it), and PostgreSQL text cannot hold one.
    found = None if "\x00" in source else await context.store.series(source, wanted, start, end, points)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {source!r}")
    table = default_table()
    out = []
    for code, s in found.codes.items():
        sym = table.get(code)
        out.append(
            CodeSeriesOut(
                code=code,
                name=sym.name if sym is not None else f"U{code}",
                time=s.time,
                count=s.count,
                nulls=s.nulls,
                min=s.min,
                max=s.max,
                avg=s.avg,
                first=s.first,
                last=s.last,
            )
        )
    return SeriesOut(
        source=found.source,
        start=found.start,
        end=found.end,
        points=found.buckets,
        bucket_us=found.width_us,
        series=out,
    )


@router.get("/symbols", response_model=list[SymbolOut], summary="Search the WITS dictionary", **READ)
async def symbols(
    search: Annotated[str | None, Query(max_length=200, description="Words to match")] = None,
    record: Annotated[int | None, Query(ge=1, le=99, description="Only this record")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 2000,
) -> list[SymbolOut]:
    """Items matching ``search`` (codes, mnemonics, descriptions), or every item (of ``record``)."""
    table = default_table()
    if search:
        found = table.search(search, record=record)
    elif record is not None:
        found = table.by_record(record)
    else:
        found = [table[c] for c in table]
    return [SymbolOut.of(s) for s in found[:limit]]


@router.get(
    "/symbols/{code}",
    response_model=SymbolOut,
    summary="One WITS item",
    **guard(Permission.READ_DATA, responses={404: {"description": "Unknown code or mnemonic"}}),
)
async def symbol(code: str) -> SymbolOut:
    """The item with this 4-digit code or mnemonic."""
    table = default_table()
    sym = table.get(code)
    if sym is None:
        found = table.by_mnemonic(code) if code and len(code) <= 64 else []
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no WITS item {code!r}")
        sym = found[0]
    return SymbolOut.of(sym)
