"""One history over both tiers: the hot SQL store and the Parquet archive, read as one.

DuckDB is the engine over the archive: embedded (a wheel, no server), vectorised, and it scans a
``pyarrow`` dataset in place with the query's columns, time bounds and codes pushed down into the
Parquet reader, so a month of one channel aggregates into 600 buckets in well under a second,
on a local disk or an S3 bucket alike (the files are opened through pyarrow's filesystems, so no
DuckDB extension has to be downloaded). The same files stay readable by Spark, Trino or pandas.

* :func:`archive_scan` yields archived points as the store's raw tuples, in the store's order
  (time, then source), for :meth:`Store.scan <witskit.storage.store.Store.scan>` to merge with the
  hot rows. A point in both tiers (archived, not yet removed by retention) is read once: the merge
  keeps the hot copy.
* :func:`archive_series` aggregates archived points into the same buckets as
  :func:`~witskit.storage.series.downsample`; :func:`merge_series` joins the two tiers' buckets
  (the archive serves the times before the hot store's first frame of the source).

Files that cannot be read (corrupt, foreign, missing) are skipped with a warning naming them: the
rest of the history stays queryable.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import chain, pairwise, repeat
from typing import Any, Final

from witskit.errors import UsageError
from witskit.storage._base import RawPoint
from witskit.storage.archive import Archive, ArchiveError, ManifestEntry, arrow_schema
from witskit.storage.schema import to_micros
from witskit.storage.series import CodeSeries, Series

__all__ = [
    "archive_codes",
    "archive_scan",
    "archive_series",
    "listed",
    "merge_scans",
    "merge_series",
    "usable_files",
]

logger = logging.getLogger("witskit.storage")

_BATCH: Final = 50_000
#: The longest window :func:`archive_scan` first reads in file order to interleave the codes'
#: columns (:func:`_grid_rows`): one read of the window whatever its shape, so it must stay small
#: (a chart's raw window); longer ones are sorted by DuckDB.
_GRID_WINDOW: Final = timedelta(hours=6)


def _duckdb() -> Any:
    try:
        import duckdb
    except ModuleNotFoundError:
        raise UsageError("reading the archive needs duckdb: pip install 'witskit[archive]'") from None
    return duckdb


def listed(archive: Archive, sources: Sequence[str] | None) -> list[ManifestEntry]:
    """The manifest's entries of ``sources``; [] with a warning when the manifest cannot be read."""
    try:
        return archive.entries(sources)
    except ArchiveError as exc:
        logger.warning("storage: archive: %s; reading the hot store only", exc)
        return []


def usable_files(
    archive: Archive, sources: Sequence[str] | None, lo: datetime | None, hi: datetime | None
) -> list[ManifestEntry]:
    """The verified entries of ``sources`` (None: all) whose day meets [lo, hi)."""
    first = None if lo is None else lo.astimezone(UTC).date()
    last = None if hi is None else (hi.astimezone(UTC) - timedelta(microseconds=1)).date()
    out: list[ManifestEntry] = []
    try:
        entries = archive.entries(sources)
    except ArchiveError as exc:
        logger.warning("storage: archive: %s; reading the hot store only", exc)
        return []
    for entry in entries:
        day = date.fromisoformat(entry.date)
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        try:
            archive.verify(entry)
        except ArchiveError as exc:
            logger.warning("storage: archive: %s; skipped", exc)
            continue
        out.append(entry)
    return out


def _dataset(archive: Archive, entries: Sequence[ManifestEntry]) -> Any:
    """The entries' files, with ``source`` and ``date`` read from their Hive directory names."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    hive = ds.partitioning(pa.schema([("source", pa.string()), ("date", pa.string())]), flavor="hive")
    return ds.dataset(
        [f"{archive.root}/{e.path}" for e in entries],
        schema=pa.unify_schemas(
            [arrow_schema(), pa.schema([("source", pa.string()), ("date", pa.string())])]
        ),
        format="parquet",
        filesystem=archive.fs,
        partitioning=hive,
        partition_base_dir=archive.root,
    )


def _register(con: Any, archive: Archive, entries: Sequence[ManifestEntry]) -> None:
    """Make the view ``archive`` of the entries' files, with ``source`` from the manifest.

    A local archive is read by DuckDB's own Parquet reader (measured 7x faster than through a
    pyarrow dataset); a remote one through pyarrow's filesystem (no DuckDB extension needed).
    """
    if not archive.local:
        con.register("archive", _dataset(archive, entries))
        return
    by_source: dict[str, list[str]] = {}
    for e in entries:
        by_source.setdefault(e.source, []).append(f"{archive.root}/{e.path}")
    rel = None
    for source, paths in by_source.items():
        quoted = source.replace("'", "''")  # a SQL string literal: quotes doubled, nothing else special
        part = con.read_parquet(paths).project(f"*, '{quoted}' AS source")
        rel = part if rel is None else rel.union(part)
    if rel is not None:
        rel.create_view("archive")


def _where(codes: Sequence[str] | None, lo: datetime | None, hi: datetime | None) -> tuple[str, list[Any]]:
    conds: list[str] = ["TRUE"]
    args: list[Any] = []
    if codes is not None:
        conds.append(f"code IN ({', '.join('?' for _ in codes)})")
        args.extend(codes)
    if lo is not None:
        conds.append("time >= ?")
        args.append(lo)
    if hi is not None:
        conds.append("time < ?")
        args.append(hi)
    return " AND ".join(conds), args


def _next_batch(reader: Any) -> Any:
    # StopIteration must not cross asyncio.to_thread (a Future cannot hold it): None ends the read.
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


async def archive_scan(
    archive: Archive,
    ids: dict[str, int],
    sources: Sequence[str] | None,
    codes: Sequence[str] | None,
    lo: datetime | None,
    hi: datetime | None,
) -> AsyncGenerator[list[RawPoint], None]:
    """Archived points as raw tuples (source id from ``ids``), ordered by time, source id, key, idx."""
    entries = await asyncio.to_thread(usable_files, archive, sources, lo, hi)
    if not entries:
        return
    duckdb = _duckdb()
    import pyarrow as pa

    con = duckdb.connect()
    try:
        _register(con, archive, entries)
        names = {e.source for e in entries}
        if lo is not None and hi is not None and hi - lo <= _GRID_WINDOW and len(names) == 1:
            (name,) = names
            where, args = _where(codes, lo, hi)
            sql = (
                "SELECT code, epoch_us(time) AS t, value, text, frame_key, idx "  # noqa: S608
                f"FROM archive WHERE {where}"
            )
            table = await asyncio.to_thread(lambda: con.sql(sql, params=args).to_arrow_table())
            rows = _grid_rows(table, ids[name]) if name in ids else []
            if rows is not None:
                for i in range(0, len(rows), _BATCH):
                    yield rows[i : i + _BATCH]
                return
        con.register("ids", pa.table({"name": list(ids), "sid": list(ids.values())}))
        where, args = _where(codes, lo, hi)
        sql = (
            "SELECT i.sid, epoch_us(a.time), a.code, a.value, a.text, a.frame_key, a.idx "  # noqa: S608
            f"FROM archive a JOIN ids i ON i.name = a.source WHERE {where} "
            "ORDER BY a.time, i.sid, a.frame_key, a.idx"
        )
        reader = await asyncio.to_thread(lambda: con.sql(sql, params=args).to_arrow_reader(_BATCH))
        while (batch := await asyncio.to_thread(_next_batch, reader)) is not None:
            cols = [c.to_pylist() for c in batch.columns]
            yield list(zip(*cols, strict=True))
    finally:
        con.close()


def _grid_rows(table: Any, sid: int) -> list[RawPoint] | None:
    """The window's points in the scan's order when it has the common shape, else None.

    The shape: a file's rows come in its order (code, then time), each code once, every code with
    the same times and frame keys (each frame holds every code), strictly increasing times (one
    frame a time) and each code always on the same line. Then the order (time, frame key, line) is
    frame by frame, each frame's codes by line: the codes' columns are interleaved as they are,
    with no sort and no key per point.
    """
    import pyarrow.compute as pc

    if not table.num_rows:
        return []
    table = table.combine_chunks()
    runs = pc.run_end_encode(table.column("code").chunk(0))
    ends, codes = runs.run_ends.to_pylist(), runs.values.to_pylist()
    if len(set(codes)) != len(codes):
        return None
    n = ends[0]
    times_a, keys_a = table.column("t").chunk(0), table.column("frame_key").chunk(0)
    values_a, texts_a, idxs_a = (table.column(c).chunk(0) for c in ("value", "text", "idx"))
    first_t, first_k = times_a.slice(0, n), keys_a.slice(0, n)
    columns = []
    start = 0
    for end, code in zip(ends, codes, strict=True):
        if end - start != n or not times_a.slice(start, n).equals(first_t):
            return None
        if not keys_a.slice(start, n).equals(first_k):
            return None
        span = pc.min_max(idxs_a.slice(start, n)).as_py()
        if span["min"] != span["max"]:
            return None
        texts = texts_a.slice(start, n)
        columns.append((span["min"], code, start, texts.null_count != n))
        start = end
    times = first_t.to_pylist()
    if any(a >= b for a, b in pairwise(times)):
        return None
    keys = first_k.to_pylist()
    parts = [
        zip(
            repeat(sid),
            times,
            repeat(code),
            values_a.slice(at, n).to_pylist(),
            texts_a.slice(at, n).to_pylist() if has_text else repeat(None),
            keys,
            repeat(idx),
            strict=False,
        )
        for idx, code, at, has_text in sorted(columns)
    ]
    return list(chain.from_iterable(zip(*parts, strict=True)))


async def merge_scans(
    hot: AsyncIterator[list[RawPoint]], cold: AsyncIterator[list[RawPoint]]
) -> AsyncGenerator[list[RawPoint], None]:
    """Both tiers' points in one time order; a point in both is read once (the hot copy)."""

    async def rows(batches: AsyncIterator[list[RawPoint]]) -> AsyncGenerator[list[RawPoint], None]:
        async for batch in batches:
            yield batch

    # Read both sides a batch at a time and merge what is certainly ordered (up to the smaller of
    # the two sides' last (time, source)).
    hot_it, cold_it = rows(hot), rows(cold)
    hot_buf: list[RawPoint] = []
    cold_buf: list[RawPoint] = []
    hot_done = cold_done = False
    seen: set[tuple[int, int, int]] = set()
    seen_at: tuple[int, int] | None = None
    while True:
        if not hot_buf and not hot_done:
            try:
                hot_buf = await anext(hot_it)
            except StopAsyncIteration:
                hot_done = True
        if not cold_buf and not cold_done:
            try:
                cold_buf = await anext(cold_it)
            except StopAsyncIteration:
                cold_done = True
        if not hot_buf and not cold_buf:
            return
        if hot_buf and cold_buf:
            limit = min((hot_buf[-1][1], hot_buf[-1][0]), (cold_buf[-1][1], cold_buf[-1][0]))
        else:
            limit = None
        take_hot = [r for r in hot_buf if limit is None or (r[1], r[0]) <= limit]
        take_cold = [r for r in cold_buf if limit is None or (r[1], r[0]) <= limit]
        hot_buf = hot_buf[len(take_hot) :]
        cold_buf = cold_buf[len(take_cold) :]
        out: list[RawPoint] = []
        # Stable: at equal (time, source) hot rows come first, so the duplicate dropped is the cold one.
        for r in heapq.merge(take_hot, take_cold, key=lambda r: (r[1], r[0])):
            at = (r[1], r[0])
            if at != seen_at:
                seen_at, seen = at, set()
            ident = (r[5], r[6], r[0])
            if ident in seen:
                continue
            seen.add(ident)
            out.append(r)
        if out:
            yield out


def archive_series(
    archive: Archive,
    source: str,
    codes: Sequence[str],
    lo_us: int,
    hi_us: int,
    width: int,
    bucket_lo_us: int,
) -> dict[str, CodeSeries]:
    """Buckets ``k = (t - bucket_lo_us) // width`` of archived points of ``source`` in [lo_us, hi_us)."""
    out = {code: CodeSeries.empty(code) for code in codes}
    lo = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=lo_us)
    hi = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=hi_us)
    entries = usable_files(archive, [source], lo, hi)
    if not entries or not codes:
        return out
    duckdb = _duckdb()
    con = duckdb.connect()
    try:
        _register(con, archive, entries)
        where, args = _where(codes, lo, hi)
        rows = con.execute(
            "SELECT code, (epoch_us(time) - ?) // ? AS k, count(value), count(*) - count(value), "  # noqa: S608
            "min(value), max(value), avg(value), "
            "arg_min(value, (time, frame_key, idx)) FILTER (WHERE value IS NOT NULL), "
            "arg_max(value, (time, frame_key, idx)) FILTER (WHERE value IS NOT NULL) "
            f"FROM archive WHERE source = ? AND text IS NULL AND {where} GROUP BY code, k ORDER BY code, k",
            [bucket_lo_us, width, source, *args],
        ).fetchall()
    finally:
        con.close()
    for code, k, n, nulls, low, high, mean, first, last in rows:
        s = out[code]
        s.time.append(bucket_lo_us + int(k) * width)
        s.count.append(int(n))
        s.nulls.append(int(nulls))
        s.min.append(low)
        s.max.append(high)
        s.avg.append(mean)
        s.first.append(first)
        s.last.append(last)
    return out


def archive_codes(archive: Archive, source: str) -> set[str]:
    """The codes the archive holds for ``source``."""
    entries = usable_files(archive, [source], None, None)
    if not entries:
        return set()
    con = _duckdb().connect()
    try:
        _register(con, archive, entries)
        return {str(c) for (c,) in con.execute("SELECT DISTINCT code FROM archive").fetchall()}
    finally:
        con.close()


def merge_series(cold: CodeSeries, hot: CodeSeries) -> CodeSeries:
    """One code's buckets from both tiers (the archive's times all come before the hot ones)."""
    if not cold.time:
        return hot
    if not hot.time:
        return cold
    out = CodeSeries.empty(hot.code)
    by_time: dict[int, list[tuple[Any, ...]]] = {}
    for s in (cold, hot):
        for i, t in enumerate(s.time):
            by_time.setdefault(t, []).append(
                (s.count[i], s.nulls[i], s.min[i], s.max[i], s.avg[i], s.first[i], s.last[i])
            )
    for t in sorted(by_time):
        parts = by_time[t]
        n = sum(p[0] for p in parts)
        nums = [p for p in parts if p[0]]
        out.time.append(t)
        out.count.append(n)
        out.nulls.append(sum(p[1] for p in parts))
        out.min.append(min(p[2] for p in nums) if nums else None)
        out.max.append(max(p[3] for p in nums) if nums else None)
        out.avg.append(sum(p[4] * p[0] for p in nums) / n if nums else None)
        out.first.append(nums[0][5] if nums else None)
        out.last.append(nums[-1][6] if nums else None)
    return out


def series_bounds(
    hot: Series | None, archive_first: datetime | None, archive_last: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The default [start, end) of a series over both tiers: from the earliest to the latest time."""
    firsts = [t for t in (archive_first, hot.start if hot else None) if t is not None]
    lasts = [
        t
        for t in (
            None if archive_last is None else archive_last + timedelta(microseconds=1),
            hot.end if hot else None,
        )
        if t is not None
    ]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def to_us(ts: datetime) -> int:
    """µs since 1970 (re-exported for the store)."""
    return to_micros(ts)
