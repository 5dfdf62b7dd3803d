"""``witskit db upgrade``, ``witskit query`` and ``witskit import``: the store from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from witskit.cli._console import handle_errors, info, stderr_console, stderr_is_terminal
from witskit.errors import FrameError, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.storage.query import PointScan

__all__ = ["register"]

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: WITS_DATABASE_URL, else the SQLite file in the data dir)."
    ),
]

#: Frames per database transaction when importing: big enough for COPY to shine (PostgreSQL loads a
#: 20,000-frame write ~20% faster than four of 5,000), small enough to hold in memory (~50 MB
#: decoded). An interrupted import is simply run again: frames already stored are skipped.
IMPORT_BATCH = 20_000


class QueryFormat(StrEnum):
    """What ``query`` writes."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


def _db_url(db: str | None) -> str:
    if db:
        return db
    from witskit.config import load_config

    return load_config().database_url_value


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [part.strip() for v in values for part in v.split(",") if part.strip()]
    return out or None


def register(app: typer.Typer) -> None:
    """Add the storage commands to the ``witskit`` app."""
    db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    @handle_errors
    def db_upgrade(db: DbOpt = None) -> None:
        """Create or upgrade the database schema to this version of WitsKit (idempotent)."""
        from witskit.storage import sanitize_url, upgrade

        url = _db_url(db)
        revision = upgrade(url)
        info(f"{sanitize_url(url)}: schema at revision {revision}")

    @app.command("query")
    @handle_errors
    def query(
        db: DbOpt = None,
        source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Source name(s).")] = None,
        symbols: Annotated[
            list[str] | None, typer.Option("--symbols", help="Codes and/or mnemonics, e.g. 0108,ROPA.")
        ] = None,
        start: Annotated[
            str | None, typer.Option("--start", help="ISO time, inclusive (naive = UTC).")
        ] = None,
        end: Annotated[str | None, typer.Option("--end", help="ISO time, exclusive.")] = None,
        fmt: Annotated[QueryFormat, typer.Option("--format", "-f", case_sensitive=False)] = QueryFormat.table,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=0, help="Table rows shown (0 = all).")] = 50,
    ) -> None:
        """Stream stored points as a table, CSV, JSON Lines or Parquet (never all in memory)."""
        if fmt is QueryFormat.parquet and output is None:
            raise UsageError("--format parquet needs --output FILE")
        rows = asyncio.run(
            _query(_db_url(db), _split(source), _split(symbols), start, end, fmt, output, limit)
        )
        info(f"{rows} rows")

    @app.command("import")
    @handle_errors
    def import_(
        files: Annotated[list[Path], typer.Argument(help="WITS log files to load.", show_default=False)],
        db: DbOpt = None,
        source: Annotated[
            str | None,
            typer.Option("--source", help="Source name for every file (default: the file's name)."),
        ] = None,
    ) -> None:
        """Bulk-load historical WITS logs; re-importing the same file adds nothing twice."""
        for path in files:
            if not path.is_file():
                raise UsageError(f"{path}: no such file")
        asyncio.run(_import(_db_url(db), files, source))


async def _query(
    url: str,
    sources: list[str] | None,
    codes: list[str] | None,
    start: str | None,
    end: str | None,
    fmt: QueryFormat,
    output: Path | None,
    limit: int,
) -> int:
    from witskit.storage import Store

    store = await Store.open(url, migrate=False, must_exist=True)
    try:
        if fmt is QueryFormat.parquet:
            assert output is not None
            scan = await store.scan(sources, codes, start, end)
            async with contextlib.aclosing(scan):
                return await _write_parquet(scan, output)
        if fmt is QueryFormat.table:
            return await _write_table(store.query_batches(sources, codes, start, end), limit)
        # CSV and JSON Lines are formatted straight from raw tuples (no PointRow per row).
        scan = await store.scan(sources, codes, start, end)
        fh: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            async with contextlib.aclosing(scan):
                return await _write_text(scan, fh, fmt)
        finally:
            if output:
                fh.close()
    finally:
        await store.aclose()


def _value(value: Any) -> Any:
    return "" if value is None else value


async def _write_text(scan: PointScan, fh: IO[str], fmt: QueryFormat) -> int:
    from witskit.storage.formats import PointText

    count = 0
    text = PointText(scan.names, source_first=True)
    if fmt is QueryFormat.csv:
        fh.write("source,time,code,name,value\n")
    async for batch in scan:
        if fmt is QueryFormat.csv:
            fh.write(text.csv(batch))
        else:
            lines = text.jsonl(batch)
            lines.append("")
            fh.write("\n".join(lines))
        count += len(batch)
    fh.flush()
    return count


async def _write_table(batches: Any, limit: int) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table("source", "time", "code", "name", "value")
    shown = count = 0
    async for batch in batches:
        for r in batch:
            count += 1
            if limit and shown >= limit:
                continue
            table.add_row(r.source, r.time.isoformat(), r.code, r.name, str(_value(r.value)))
            shown += 1
    Console(markup=False, highlight=False).print(table)
    if limit and count > shown:
        info(f"{count - shown} more rows not shown; use --format csv or jsonl")
    return count


async def _write_parquet(scan: PointScan, output: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise UsageError("--format parquet needs pyarrow: pip install 'witskit[parquet]'") from None
    from witskit.symbols import default_table

    schema = pa.schema(
        [
            ("source", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("code", pa.string()),
            ("name", pa.string()),
            ("value_num", pa.float64()),
            ("value_text", pa.string()),
        ]
    )
    table = default_table()
    mnemonics: dict[str, str] = {}

    def mnemonic(code: str) -> str:
        name = mnemonics.get(code)
        if name is None:
            sym = table.get(code)
            name = mnemonics[code] = sym.name if sym is not None else f"U{code}"
        return name

    names = scan.names
    count = 0
    with pq.ParquetWriter(output, schema) as writer:
        async for batch in scan:
            # Columns straight from the raw tuples (times are µs already): no object per row.
            sids, times, codes, nums, texts, _, _ = zip(*batch, strict=True)
            columns = [
                [names.get(sid, f"#{sid}") for sid in sids],
                pa.array(times, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                codes,
                [mnemonic(code) for code in codes],
                nums,
                texts,
            ]
            writer.write_table(pa.table(columns, schema=schema))
            count += len(batch)
    return count


def _file_batches(
    fh: IO[bytes], decoder: Any, name: str, path: Path
) -> Iterator[tuple[list[Any], tuple[int, int, int], int]]:
    """(frames, (frames, points, bad stretches), file position) per ``IMPORT_BATCH`` frames."""
    from witskit.protocol import iter_decode

    batch: list[Any] = []
    frames = points = errors = 0
    for event in iter_decode(fh, decoder=decoder, source=name):
        if isinstance(event, FrameError):
            errors += 1
            info(f"{path}:{event.line}: {event.reason}")
            continue
        batch.append(event)
        frames += 1
        points += len(event.codes)
        if len(batch) >= IMPORT_BATCH:
            yield batch, (frames, points, errors), fh.tell()
            batch = []
            frames = points = errors = 0
    yield batch, (frames, points, errors), fh.tell()


async def _import(url: str, files: list[Path], source: str | None) -> None:
    from witskit.protocol import WITSDecoder
    from witskit.storage import Store, sanitize_url

    store = await Store.open(url)
    decoder = WITSDecoder()
    total = sum(p.stat().st_size for p in files)
    show_progress = stderr_is_terminal() and total > 10 << 20
    frames = points = errors = inserted = 0
    started = time.perf_counter()
    try:
        progress: Any = None
        if show_progress:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=stderr_console(),
            )
            progress.start()
            task = progress.add_task("importing", total=total)
        for path in files:
            name = source or path.name
            with path.open("rb") as fh:
                last = 0
                reader = _file_batches(fh, decoder, name, path)
                # Decoding runs in a thread while the previous batch is written: the database
                # works on one batch (on its own core) while the next is decoded.
                pending = asyncio.ensure_future(asyncio.to_thread(next, reader, None))
                try:
                    while (item := await pending) is not None:
                        batch, stats, pos = item
                        pending = asyncio.ensure_future(asyncio.to_thread(next, reader, None))
                        frames += stats[0]
                        points += stats[1]
                        errors += stats[2]
                        if batch:
                            inserted += await store.write(batch)
                        if progress is not None:
                            progress.advance(task, pos - last)
                            last = pos
                finally:
                    if not pending.done():
                        with contextlib.suppress(BaseException):
                            await pending  # the thread still reads the file: let it finish first
        if progress is not None:
            progress.stop()
    finally:
        await store.aclose()
    seconds = time.perf_counter() - started
    info(
        f"imported {len(files)} file(s) into {sanitize_url(url)}: {frames} frames, {points} points "
        f"({inserted} new), {errors} bad stretches skipped, in {seconds:.1f} s "
        f"({points / seconds if seconds else 0:,.0f} points/s)"
    )
