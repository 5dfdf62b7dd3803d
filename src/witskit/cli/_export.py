"""``witskit export las`` and ``witskit export witsml``: stored channels as LAS 2.0 or WITSML logs.

The command parses its options into a :class:`witskit.export.ExportRequest`, opens the store and
calls :func:`witskit.export.render`, the same call the HTTP route makes; every way a request can
fail is one error line naming what is missing (exit status 2).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from witskit.cli._console import handle_errors, info
from witskit.cli._storage import DbOpt, _db_url
from witskit.errors import UsageError
from witskit.export import ExportFormat, ExportRequest, IndexKind, WitsmlVersion, render

__all__ = ["register"]

_Source = Annotated[
    str | None, typer.Option("--source", "-s", help="Source name (with --file: default the file name).")
]
_File = Annotated[
    Path | None,
    typer.Option("--file", help="Read a WITS capture file instead of the store.", show_default=False),
]
_Codes = Annotated[
    list[str],
    typer.Option("--codes", "-c", help="Codes and/or mnemonics, e.g. DBTM,ROPA,0110.", show_default=False),
]
_Start = Annotated[str | None, typer.Option("--start", help="ISO time, inclusive (naive = UTC).")]
_End = Annotated[str | None, typer.Option("--end", help="ISO time, exclusive.")]
_Step = Annotated[
    float | None,
    typer.Option(
        "--step", help="Depth step (depth units, default 0.5) or time step (seconds; LAS default 1)."
    ),
]
_Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")]
_Metric = Annotated[bool, typer.Option("--metric/--fps", help="Unit system of the rig (labels the units).")]
_Well = Annotated[str | None, typer.Option("--well", help="Well name (default: WID item, else source).")]
_Tz = Annotated[str, typer.Option("--tz", help="Time zone of the times written (IANA name).")]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name!r} is not a known time zone (e.g. UTC, America/Chicago)") from None


def _codes(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _run(
    db: str | None,
    file: Path | None,
    request: ExportRequest,
    fmt: ExportFormat,
    version: WitsmlVersion,
    output: Path | None,
) -> None:
    from witskit.storage import Store

    if file is not None:
        if db is not None:
            raise UsageError("give --db or --file, not both")
        from witskit.config import load_config
        from witskit.export import CaptureReader

        reader = CaptureReader.open(
            file, source=request.source, timezone=load_config().timezone, metric=request.metric
        )
        _write(asyncio.run(render(reader, request, fmt, version)), output)
        return
    url = _db_url(db)

    async def go() -> bytes:
        store = await Store.open(url, migrate=False, must_exist=True)
        try:
            names = [s.name for s in await store.sources()]
            if request.source not in names:
                known = ", ".join(names) or "none"
                raise UsageError(f"no source named {request.source!r} in the store; its sources: {known}")
            return await render(store, request, fmt, version)
        finally:
            await store.aclose()

    _write(asyncio.run(go()), output)


def _write(document: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(document)
        sys.stdout.buffer.flush()
        return
    output.write_bytes(document)
    info(f"wrote {output} ({len(document)} bytes)")


def register(app: typer.Typer) -> None:
    """Add ``export las`` and ``export witsml`` to the ``witskit`` app."""
    export_app = typer.Typer(help="Export stored channels as LAS 2.0 or WITSML logs.", no_args_is_help=True)
    app.add_typer(export_app, name="export", short_help="Export stored channels as LAS 2.0 or WITSML.")

    def request(
        source: str | None,
        file: Path | None,
        codes: list[str],
        index: IndexKind,
        start: str | None,
        end: str | None,
        step: float | None,
        metric: bool,
        well: str | None,
        tz: str,
    ) -> ExportRequest:
        from witskit.storage.query import parse_time

        if source is None and file is None:
            raise UsageError("name the source to export with --source (or read a capture with --file)")
        return ExportRequest(
            source=source or (file.name if file else ""),
            codes=_codes(codes),
            index=index,
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            step=step,
            metric=metric,
            well=well,
            tz=_zone(tz),
        )

    @export_app.command("las")
    @handle_errors
    def las(
        codes: _Codes,
        source: _Source = None,
        file: _File = None,
        index: Annotated[IndexKind, typer.Option("--index", help="Index the log by depth or time.")] = (
            IndexKind.depth
        ),
        start: _Start = None,
        end: _End = None,
        step: _Step = None,
        output: _Output = None,
        db: DbOpt = None,
        metric: _Metric = False,
        well: _Well = None,
        tz: _Tz = "UTC",
    ) -> None:
        """Write a LAS 2.0 file: depth resampled on bottom, or time (see docs/outputs.md)."""
        req = request(source, file, codes, index, start, end, step, metric, well, tz)
        _run(db, file, req, ExportFormat.las, WitsmlVersion.v1411, output)

    @export_app.command("witsml")
    @handle_errors
    def witsml(
        codes: _Codes,
        source: _Source = None,
        file: _File = None,
        index: Annotated[IndexKind, typer.Option("--index", help="Index the log by time or depth.")] = (
            IndexKind.time
        ),
        version: Annotated[WitsmlVersion, typer.Option("--version", help="WITSML version.")] = (
            WitsmlVersion.v1411
        ),
        well_uid: Annotated[
            str | None, typer.Option("--well-uid", help="Well uid (default: the source).")
        ] = None,
        wellbore_uid: Annotated[
            str | None, typer.Option("--wellbore-uid", help="Wellbore uid (default: SOURCE-wb).")
        ] = None,
        log_uid: Annotated[
            str | None, typer.Option("--log-uid", help="Log uid (default: SOURCE-INDEX).")
        ] = None,
        start: _Start = None,
        end: _End = None,
        step: _Step = None,
        output: _Output = None,
        db: DbOpt = None,
        metric: _Metric = False,
        well: _Well = None,
        tz: _Tz = "UTC",
    ) -> None:
        """Write a WITSML 1.4.1.1 <logs> or 2.0 Log document (see docs/outputs.md)."""
        req = request(source, file, codes, index, start, end, step, metric, well, tz)
        req = replace(req, well_uid=well_uid, wellbore_uid=wellbore_uid, log_uid=log_uid)
        _run(db, file, req, ExportFormat.witsml, version, output)
