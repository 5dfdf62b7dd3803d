"""``witskit db``, ``archive``, ``query`` and ``import``: the store from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from witskit.cli._console import (
    EXIT_PROBLEMS,
    EXIT_USAGE,
    error,
    handle_errors,
    info,
    stderr_console,
    stderr_is_terminal,
    warn,
)
from witskit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.config import WitsConfig

__all__ = ["register"]

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: WITS_DATABASE_URL, else the SQLite file in the data dir)."
    ),
]

#: Frames per database transaction when importing: big enough for COPY to shine (PostgreSQL loads a
#: 20,000-frame write ~20% faster than four of 5,000), small enough to hold in memory (~50 MB
#: decoded). An interrupted import run again resumes after the last batch committed.
IMPORT_BATCH = 20_000


class QueryFormat(StrEnum):
    """What ``query`` writes."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


def _default_store_hint() -> str:
    """What to do when the default store does not exist (``make demo`` keeps its own in the clone)."""
    demo = Path(".witskit") / "witskit.db"
    if demo.is_file():
        return f"make demo keeps its store in this clone: add --db sqlite:///{demo} (or set WITS_DATA_DIR)"
    return "name the store with --db URL (or WITS_DATABASE_URL, or WITS_DATA_DIR)"


def note_demo_store(config: WitsConfig) -> None:
    """Say so when a command falls back on the settings' store next to ``make demo``'s own.

    ``make demo`` keeps its store in ``.witskit/`` of the clone; a command run there without
    ``--db`` reads the per-user store instead, which looks empty ("0 user(s)", "no user 'admin'").
    """
    demo = Path(".witskit") / "witskit.db"
    if config.database_url is not None or not demo.is_file():
        return
    if Path(config.data_dir).resolve() == demo.parent.resolve():
        return
    info(f"note: no --db: using {config.database_url_value}; make demo's store here is --db sqlite:///{demo}")


def _db_url(db: str | None) -> str:
    if db:
        return db
    from witskit.config import load_config

    config = load_config()
    note_demo_store(config)
    if config.database_url is None:  # the default SQLite file: its directory may not exist yet
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(
                f"cannot create the data directory {config.data_dir}: {exc.strerror or exc}"
            ) from None
    return config.database_url_value


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [part.strip() for v in values for part in v.split(",") if part.strip()]
    return out or None


def register(app: typer.Typer) -> None:
    """Add the storage commands to the ``witskit`` app."""
    db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
    app.add_typer(db_app, name="db", short_help="Create or upgrade the database schema.")

    @db_app.command("upgrade")
    @handle_errors
    def db_upgrade(db: DbOpt = None) -> None:
        """Create or upgrade the database schema to this version of WitsKit (idempotent)."""
        from witskit.storage import sanitize_url, upgrade

        url = _db_url(db)
        revision = upgrade(url)
        info(f"{sanitize_url(url)}: schema at revision {revision}")

    @db_app.command("retention")
    @handle_errors
    def db_retention(
        db: DbOpt = None,
        days: Annotated[
            int | None, typer.Option("--days", min=1, help="Days kept for every source (default: all).")
        ] = None,
        per_source: Annotated[
            list[str] | None,
            typer.Option("--source", "-s", help="NAME=DAYS: days kept for one source (repeatable)."),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
        apply: Annotated[bool, typer.Option("--apply", help="Remove it.")] = False,
        archive: Annotated[
            str | None,
            typer.Option("--archive", help="Remove only what this Parquet archive verifiably holds."),
        ] = None,
    ) -> None:
        """Remove history older than the retention (PostgreSQL: whole partitions; see docs/history.md)."""
        from witskit.storage.retention import RetentionPolicy

        if dry_run == apply:
            raise UsageError("say --dry-run (list what would go) or --apply (remove it)")
        policy = RetentionPolicy.parse(days, per_source)
        if (policy.days is None and not policy.per_source) or archive is None:
            from witskit.config import load_config

            config = load_config()
            if policy.days is None and not policy.per_source:
                policy = RetentionPolicy(config.retention_days, dict(config.retention_sources))
            archive = archive or config.archive_url
        if policy.days is None and not policy.per_source:
            raise UsageError(
                "no retention given: --days N and/or --source NAME=DAYS (or WITS_RETENTION_DAYS, "
                "WITS_RETENTION_SOURCES)"
            )
        report = asyncio.run(_retention(_db_url(db), policy, apply, archive))
        verb = "removed" if apply else "would remove"
        for r in report.removed:
            counts = (
                f"{r.points:,} points, {r.frames:,} frames"
                if r.points is not None and r.frames is not None
                else ""
            )
            size = f"{r.size / 1e6:,.1f} MB" if r.size is not None else ""
            extra = "; ".join(x for x in (counts, size) if x)
            typer.echo(
                f"{verb} {r.source} {r.start:%Y-%m-%d %H:%M} .. {r.end:%Y-%m-%d %H:%M} UTC: {r.target}"
                + (f" ({extra})" if extra else "")
            )
        for line in report.kept:
            warn(f"kept {line}")
        if not report.removed:
            info("nothing to remove")
        if report.kept:
            raise typer.Exit(EXIT_PROBLEMS)

    @db_app.command("compact")
    @handle_errors
    def db_compact(
        db: DbOpt = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only list what would be compacted.")
        ] = False,
        apply: Annotated[bool, typer.Option("--apply", help="Compact it.")] = False,
        before: Annotated[
            str | None,
            typer.Option("--before", help="Compact the hours before this UTC time (default: this hour)."),
        ] = None,
        source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Source name(s).")] = None,
    ) -> None:
        """Move closed hours of points into hourly blocks (PostgreSQL; see docs/history.md)."""
        from witskit.storage.blocks import compaction_cutoff
        from witskit.storage.query import parse_time

        if dry_run == apply:
            raise UsageError("say --dry-run (list what would be compacted) or --apply (compact it)")
        now = datetime.now(UTC)
        cutoff = compaction_cutoff(parse_time(before, "--before") or now)
        if cutoff > now:
            raise UsageError(f"--before {before} is in the future: only closed hours are compacted")
        url = _db_url(db)
        asyncio.run(_compact(url, cutoff, _split(source), apply))

    @app.command("archive", short_help="Move closed days of history to the Parquet archive.")
    @handle_errors
    def archive(
        to: Annotated[
            str, typer.Option("--to", help="Archive directory, or s3://bucket/prefix (pyarrow URI).")
        ],
        db: DbOpt = None,
        source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Source name(s).")] = None,
        until: Annotated[
            str | None, typer.Option("--until", help="Archive days before this UTC date (default: today).")
        ] = None,
    ) -> None:
        """Write every closed day of history to zstd Parquet files (idempotent; see docs/history.md)."""
        from witskit.storage.query import parse_time

        end = parse_time(until, "until") if until else None
        written, skipped, points = asyncio.run(_archive(_db_url(db), to, _split(source), end))
        from witskit.storage import sanitize_url

        shown = sanitize_url(to)  # s3://KEY:SECRET@bucket/... is how pyarrow takes keys in a URI
        info(f"archive {shown}: {written} day(s) written ({points:,} points), {skipped} already archived")

    @app.command("query", short_help="Read stored points as a table, CSV, JSONL or Parquet.")
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
        archive: Annotated[
            str | None,
            typer.Option("--archive", help="Also read this Parquet archive (directory or s3:// URI)."),
        ] = None,
        metric: Annotated[
            bool,
            typer.Option("--metric/--fps", help="Unit system of the rig: labels the CSV unit column."),
        ] = False,
    ) -> None:
        """Stream stored points as a table, CSV, JSON Lines or Parquet (never all in memory).

        --symbols takes codes (0108), mnemonics (DBTM) and record-qualified mnemonics (01.DBTM).
        A mnemonic that several stored channels share (DBTM: 0108 in record 1, 0810 in record 8)
        selects them all, with a warning naming each; pick one by code or by record. CSV columns:
        time,source,code,mnemonic,value,text,unit (read it with pandas' dtype={"code": str}).
        In a terminal, a progress line counts the rows on stderr.
        """
        if fmt is QueryFormat.parquet and output is None:
            raise UsageError("--format parquet needs --output FILE")
        wanted = _Wanted(_split(source), _split(symbols), start, end, metric, archive)
        from witskit.storage import DatabaseNotFound

        url = _db_url(db)  # without --db next to make demo's store: a note says which is read
        try:
            rows = asyncio.run(_query(url, wanted, fmt, output, limit))
        except DatabaseNotFound as exc:
            if db is not None:
                raise
            raise DatabaseNotFound(f"{exc}; {_default_store_hint()}", url=exc.url) from None
        info(f"{rows} rows")

    @app.command("import", short_help="Bulk-load WITS log files into the store (resumable).")
    @handle_errors
    def import_(
        files: Annotated[
            list[Path], typer.Argument(metavar="FILES", help="WITS log files to load.", show_default=False)
        ],
        db: DbOpt = None,
        source: Annotated[
            str | None,
            typer.Option("--source", help="Source name for every file (default: the file's name)."),
        ] = None,
        batch: Annotated[
            int,
            typer.Option(
                "--batch",
                min=1,
                metavar="FRAMES",
                help="Frames per database transaction; progress is saved after each.",
            ),
        ] = IMPORT_BATCH,
    ) -> None:
        """Bulk-load historical WITS logs; re-importing the same file adds nothing twice.

        Progress is saved in the database after every committed batch: an interrupted import
        (Ctrl-C, kill, power cut) run again resumes after the last batch stored. A file that
        changed since is imported from the start, with a warning. Exit status 1 when a file
        holds no WITS frame at all (the other files are still imported).
        """
        _check_files(files)
        try:
            status = asyncio.run(_import(_db_url(db), files, source, batch))
        except KeyboardInterrupt:
            error("interrupted: what was stored is kept; run the same command again to resume")
            raise typer.Exit(130) from None
        if status:
            raise typer.Exit(status)


#: Up to this many sources, an ambiguous mnemonic is narrowed to the channels they hold.
_NARROW_SOURCES = 50


@dataclass(frozen=True)
class _Wanted:
    """What ``query`` asks for."""

    sources: list[str] | None
    symbols: list[str] | None
    start: str | None
    end: str | None
    metric: bool = False
    archive: str | None = None


async def _codes_for(store: Any, wanted: _Wanted) -> list[str] | None:
    """Check the sources exist (else list those that do); resolve the symbols, saying when a
    mnemonic matches several stored channels."""
    from witskit.storage.query import resolve_codes

    known = [s.name for s in await store.sources()]
    unknown = [s for s in wanted.sources or () if s not in known]
    if unknown:
        have = ", ".join(known) if known else "none yet"
        raise UsageError(f"no source named {', '.join(map(repr, unknown))} in the store; its sources: {have}")
    if not wanted.symbols:
        return None
    ambiguous: list[str] = []
    codes = resolve_codes(wanted.symbols, on_ambiguous=ambiguous.append)
    if not ambiguous:
        return codes
    # A mnemonic several records use: narrow it to the channels the store holds, looked up only
    # now and only for a bounded number of sources (one index probe per code each).
    names = wanted.sources or known
    present: set[str] | None = None
    if len(names) <= _NARROW_SOURCES:
        present = set()
        for name in names:
            present.update(await store.latest(name))
    return resolve_codes(wanted.symbols, present=present, on_ambiguous=warn)


@contextlib.contextmanager
def _row_progress() -> Iterator[Any]:
    """A transient rows counter on stderr when stderr is a terminal; else None."""
    if not stderr_is_terminal():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("querying: {task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task("query", total=None)
        yield lambda n: progress.advance(task, n)


async def _query(url: str, wanted: _Wanted, fmt: QueryFormat, output: Path | None, limit: int) -> int:
    from witskit.storage import Store

    store = await Store.open(url, migrate=False, must_exist=True)
    try:
        if wanted.archive is not None:
            store.attach_archive(wanted.archive)
        codes = await _codes_for(store, wanted)
        where = (wanted.sources, codes, wanted.start, wanted.end)
        with _row_progress() as advance:
            if fmt is QueryFormat.parquet:
                assert output is not None
                scan = await store.scan(*where)
                async with contextlib.aclosing(scan):
                    return await _write_parquet(_counted(scan, advance), scan.names, output)
            if fmt is QueryFormat.table:
                return await _write_table(_counted(store.query_batches(*where), advance), limit)
            # CSV and JSON Lines are formatted straight from raw tuples (no PointRow per row).
            scan = await store.scan(*where)
            fh: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
            try:
                async with contextlib.aclosing(scan):
                    return await _write_text(_counted(scan, advance), scan.names, fh, fmt, wanted.metric)
            finally:
                if output:
                    fh.close()
    finally:
        await store.aclose()


async def _retention(url: str, policy: Any, apply: bool, archive: str | None) -> Any:
    from witskit.storage import Store
    from witskit.storage.archive import Archive, is_archived

    target = None if archive is None else Archive(archive)
    store = await Store.open(url, migrate=False, must_exist=True)
    try:
        gate = None
        if target is not None:
            verified_in = target

            async def gate(source: str, lo: Any, hi: Any) -> bool:
                return await is_archived(store, verified_in, source, lo, hi)

        return await store.retention(policy, apply=apply, archived=gate)
    finally:
        await store.aclose()


async def _compact(url: str, cutoff: datetime, sources: list[str] | None, apply: bool) -> None:
    from witskit.storage import Store, sanitize_url

    store = await Store.open(url, migrate=False, must_exist=True)
    try:
        if store.backend != "postgresql":
            info(
                f"{sanitize_url(url)}: {store.backend} keeps one row per point; hourly blocks exist only "
                "on PostgreSQL, so there is nothing to compact"
            )
            return
        verb = "compacted" if apply else "would compact"

        def say(name: str, day: Any) -> None:
            typer.echo(f"{verb} {name} {day.day:%Y-%m-%d}: {day.hours} hour(s), {day.points:,} points")

        # The plan sizes the progress bar when there is one; without a terminal, --apply skips it.
        plan = (
            await store.compaction_plan(cutoff, sources=sources) if not apply or stderr_is_terminal() else []
        )
        done: list[tuple[str, Any]] = []
        if not apply:
            done = plan
            for name, day in plan:
                say(name, day)
        else:
            with _points_progress(sum(d.points for _, d in plan)) as advance:

                def told(name: str, day: Any) -> None:
                    done.append((name, day))
                    if advance is not None:
                        advance(day.points)
                    say(name, day)

                await store.compact(cutoff, sources=sources, on_day=told)
        total, names, hours = (
            sum(d.points for _, d in done),
            {n for n, _ in done},
            sum(d.hours for _, d in done),
        )
        if not total:
            info(f"nothing to compact before {cutoff:%Y-%m-%d %H:%M} UTC")
            return
        info(
            f"{verb} {total:,} points of {len(names)} source(s), {hours} hour(s), "
            f"into hourly blocks (before {cutoff:%Y-%m-%d %H:%M} UTC)"
        )
    finally:
        await store.aclose()


@contextlib.contextmanager
def _points_progress(total: int) -> Iterator[Any]:
    """A transient points bar on stderr when stderr is a terminal; else None."""
    if not stderr_is_terminal():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("compacting: {task.completed:,.0f} of {task.total:,.0f} points"),
        BarColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task("compact", total=total or None)
        yield lambda n: progress.advance(task, n)


async def _archive(url: str, to: str, sources: list[str] | None, until: Any) -> tuple[int, int, int]:
    from witskit.storage import Store
    from witskit.storage.archive import Archive, archive_days

    target = Archive(to)
    store = await Store.open(url, migrate=False, must_exist=True)
    try:

        def done(entry: Any) -> None:
            info(f"  {entry.source} {entry.date}: {entry.rows:,} points, {entry.bytes:,} bytes")

        report = await archive_days(store, target, sources=sources, until=until, on_day=done)
    finally:
        await store.aclose()
    return len(report.written), report.skipped, report.points


async def _counted(batches: AsyncIterable[list[Any]], advance: Any) -> AsyncIterator[list[Any]]:
    """The batches, each counted on the progress line (when there is one)."""
    async for batch in batches:
        if advance is not None:
            advance(len(batch))
        yield batch


def _value(value: Any) -> Any:
    return "" if value is None else value


async def _write_text(
    scan: AsyncIterator[list[Any]], names: dict[int, str], fh: IO[str], fmt: QueryFormat, metric: bool
) -> int:
    from witskit.storage.formats import CSV_COLUMNS, PointText

    count = 0
    # CSV in WitsKit's one layout (time first); JSON Lines source first, as before.
    text = PointText(names, source_first=True, metric=metric)
    if fmt is QueryFormat.csv:
        fh.write(",".join(CSV_COLUMNS) + "\n")
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


async def _write_parquet(scan: AsyncIterator[list[Any]], names: dict[int, str], output: Path) -> int:
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


@dataclass
class _FileRun:
    """One file of an import: where it starts (a resumed import) and what it saw."""

    path: Path
    name: str
    base_offset: int = 0
    base_line: int = 1
    frames_before: int = 0
    #: Byte offset and input line just after the last frame decoded so far.
    end_offset: int = 0
    end_line: int = 1
    frames: int = 0
    points: int = 0
    errors: int = 0


def _check_files(files: list[Path]) -> None:
    """Every path that is not a readable file, each on its own error line (exit status 2)."""
    bad = 0
    for path in files:
        if path.is_dir():
            error(f"{path}: is a directory, not a WITS log (give the files in it, e.g. {path}/*.wits)")
        elif not path.exists():
            error(f"{path}: no such file")
        elif not path.is_file():
            error(f"{path}: not a regular file")
        else:
            continue
        bad += 1
    if bad:
        raise typer.Exit(EXIT_USAGE)


def _why_no_frames(path: Path) -> str:
    """Why a file gave no frame at all, in a few words."""
    size = path.stat().st_size
    if size == 0:
        return "empty file, nothing imported"
    with path.open("rb") as fh:
        head = fh.read(4096)
    printable = sum(1 for b in head if 32 <= b < 127 or b in b"\r\n\t")
    if b"\x00" in head or printable < 0.9 * len(head):
        return f"not a WITS log: binary data, no WITS frames in {size} bytes"
    return f"no WITS frames found in {size} bytes (a frame runs from a && line to a !! line)"


def _ends_a_frame(path: Path, offset: int) -> bool:
    """True when the file still has a frame's ``!!`` just before ``offset`` (line endings aside),
    as when the offset was saved: a file rewritten in the middle under the same head is not
    resumed at an offset that now falls inside a frame."""
    from witskit.storage.imports import ends_a_frame

    with path.open("rb") as fh:
        return ends_a_frame(fh, offset)


async def _start_of(store: Any, path: Path, name: str) -> tuple[_FileRun, Any]:
    """Where the import of ``path`` starts: after the last committed batch of an earlier run."""
    from witskit.storage.imports import file_identity, file_key, head_sha256

    ident = file_identity(path)
    key = file_key(name, ident.path)
    run = _FileRun(path, name)
    mark = await store.import_mark(key)
    if mark is not None:
        same = (
            mark.byte_offset <= ident.size
            and head_sha256(path, mark.head_len) == mark.head_sha256
            and _ends_a_frame(path, mark.byte_offset)
        )
        if not same:
            warn(
                f"{path}: changed since it was last imported ({mark.frames} frames, up to byte "
                f"{mark.byte_offset}): importing it from the start (frames already stored are skipped by key)"
            )
        else:
            run.base_offset = run.end_offset = mark.byte_offset
            run.base_line = run.end_line = mark.line
            run.frames_before = mark.frames
            if mark.byte_offset == ident.size:
                info(f"{path}: already imported ({mark.frames} frames), nothing new")
            else:
                info(
                    f"{path}: resuming at byte {mark.byte_offset} of {ident.size} (line {mark.line}), "
                    f"after the {mark.frames} frames imported before"
                )
    return run, _where(path, ident, key)


def _where(path: Path, ident: Any, key: str) -> tuple[Any, str, int, str]:
    """(identity, import key, head length, head SHA-256): what a mark records of the file now."""
    from witskit.storage.imports import HEAD_BYTES, head_sha256

    head_len = min(HEAD_BYTES, ident.size)
    return ident, key, head_len, head_sha256(path, head_len)


def _tail_done(path: Path, run: _FileRun, size: int) -> bool:
    """Move the end of ``run`` to the end of the file when what follows its last frame holds no
    frame start (a line ending, garbage already reported); True when it moved.

    A tail with a ``&&`` is a frame cut short, perhaps still being written: it is read again next time.
    """
    if run.end_offset >= size:
        return False
    newlines = 0
    with path.open("rb") as fh:
        fh.seek(run.end_offset)
        carry = b""
        while chunk := fh.read(1 << 20):
            if b"&&" in carry + chunk:
                return False
            newlines += chunk.count(b"\n")
            carry = chunk[-1:]
    run.end_offset, run.end_line = size, run.end_line + newlines
    return True


async def _save(store: Any, run: _FileRun, where: Any) -> None:
    from witskit.storage.imports import ImportMark

    ident, key, head_len, head = where
    await store.save_import_mark(
        ImportMark(
            key,
            run.name,
            ident.path,
            ident.size,
            ident.mtime_ns,
            head_len,
            head,
            run.end_offset,
            run.end_line,
            run.frames_before + run.frames,
        )
    )


async def _import(url: str, files: list[Path], source: str | None, batch_size: int = IMPORT_BATCH) -> int:
    """Import ``files``; the exit status (1 when a file held no frame at all)."""
    from witskit.storage import Store, sanitize_url
    from witskit.storage.file_import import batch_gc, reader_batches
    from witskit.storage.imports import file_identity, file_key

    store = await Store.open(url)
    total = sum(p.stat().st_size for p in files)
    show_progress = stderr_is_terminal() and total > 10 << 20
    frames = points = errors = inserted = 0
    empty: list[Path] = []
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
        with batch_gc() as collect:
            # A file named twice (overlapping globs) is imported once: the reader plans every
            # file before it reads any, so a second mention would read it again, from its start.
            once: dict[Path, Path] = {}
            for path in files:
                if once.setdefault(path.resolve(), path) is not path:
                    info(f"{path}: named more than once: imported once")
            plans = [(path, *await _start_of(store, path, source or path.name)) for path in once.values()]
            last = [run.base_offset for _, run, _ in plans]
            if progress is not None:
                progress.advance(task, sum(last))
            # One reader process decodes the files in turn (and keys their frames) on the other
            # core while this one writes the batch before: one GIL each.
            jobs = [
                (str(path), run.name, run.base_offset, run.base_line, where[2], where[3])
                for path, run, where in plans
            ]

            def changed(index: int) -> None:
                # Replaced or cut between the plan and the read: from the start, as _start_of does.
                path, run, _ = plans[index]
                warn(
                    f"{path}: changed since this import began: importing it from the start "
                    "(frames already stored are skipped by key)"
                )
                run.base_offset = run.end_offset = run.frames_before = last[index] = 0
                run.base_line = run.end_line = 1
                ident = file_identity(path)
                plans[index] = (path, run, _where(path, ident, file_key(run.name, ident.path)))

            async with reader_batches(jobs, batch_size, info, changed) as batches:
                async for index, item in batches:
                    path, run, where = plans[index]
                    if item is None:  # the file is read to its end
                        if run.frames and _tail_done(path, run, where[0].size):
                            await _save(store, run, where)
                        frames += run.frames
                        points += run.points
                        errors += run.errors
                        if run.frames == 0 and run.frames_before == 0:
                            empty.append(path)
                        continue
                    run.frames += item.frames
                    run.points += item.points
                    run.errors += item.errors
                    if item.rows:
                        inserted += await store.write_prepared(run.name, item.rows)
                        # Only after the commit: a kill before this re-reads the batch
                        # (its frames are skipped by key), never skips it.
                        run.end_offset, run.end_line = item.end
                        await _save(store, run, where)
                    if progress is not None:
                        progress.advance(task, item.position - last[index])
                        last[index] = item.position
                    del item  # freed before the collection
                    collect()
        if progress is not None:
            progress.stop()
    finally:
        await store.aclose()
    seconds = time.perf_counter() - started
    # A file without a frame is not "imported": it gets its own error line below.
    count = f"{len(files) - len(empty)} of {len(files)}" if empty else f"{len(files)}"
    info(
        f"imported {count} file(s) into {sanitize_url(url)}: {frames} frames, {points} points "
        f"({inserted} new), {errors} bad stretches skipped, in {seconds:.1f} s "
        f"({points / seconds if seconds else 0:,.0f} points/s)"
    )
    for path in empty:
        error(f"{path}: {_why_no_frames(path)}")
    return EXIT_PROBLEMS if empty else 0
