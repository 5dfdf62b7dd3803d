"""``witskit analyze quality PATH | --db URL --source NAME``: the data-quality issues of a feed.

One row per issue (``witskit.analytics.quality``): gaps, null runs, frozen values, spikes, readings
out of their physical range, clock offsets and time going backwards. From a file the receive time
is the reading time, so clock offsets are judged only for stored frames (``--db``), which keep the
time each frame was received.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from witskit.cli._console import handle_errors, info
from witskit.errors import UsageError

if TYPE_CHECKING:
    from witskit.analytics.quality import QualityIssue, QualitySettings
    from witskit.protocol import DecodedFrame, WITSDecoder

__all__ = ["CSV_COLUMNS", "QualityFormat", "register"]

#: The header of ``--format csv``.
CSV_COLUMNS = ("source", "code", "mnemonic", "kind", "start", "end", "count", "detail")


class QualityFormat(StrEnum):
    """What ``analyze quality`` writes."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"


def _limits(values: list[str] | None) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for text in values or []:
        code, sep, bounds = text.partition("=")
        low, colon, high = bounds.partition(":")
        try:
            if not sep or not colon or len(code) != 4 or not code.isdigit():
                raise ValueError
            out[code] = (float(low), float(high))
        except ValueError:
            raise UsageError(f"--limit {text!r}: write CODE=LOW:HIGH, such as 0121=0:7500") from None
    return out


def _file_frames(path: Path, decoder: WITSDecoder) -> Iterator[DecodedFrame]:
    from witskit.protocol import DecodedFrame, iter_decode

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with path.open("rb") as data:
        for event in iter_decode(data, decoder=decoder, source=path.name):
            if isinstance(event, DecodedFrame):
                yield event


async def _stored_issues(
    url: str, source: str, start: str | None, end: str | None, decoder: WITSDecoder, settings: QualitySettings
) -> list[QualityIssue]:
    from witskit.analytics.quality import QualityChecker
    from witskit.storage.database import Database
    from witskit.storage.frame_scan import scan_frames
    from witskit.storage.query import parse_time

    checker = QualityChecker(settings)
    issues: list[QualityIssue] = []
    db = Database.open(url, pool_size=1)
    seen = 0
    try:
        async for page in scan_frames(
            db, source, start=parse_time(start, "--start"), end=parse_time(end, "--end")
        ):
            for raw in page:
                issues.extend(checker.feed(decoder.decode(raw)))
            seen += len(page)
    finally:
        await db.aclose()
    if not seen:
        raise UsageError(f"no stored frames of source {source!r} in that range (see: witskit query --db URL)")
    return issues + checker.finish()


def _write(issues: Iterable[QualityIssue], fmt: QualityFormat, out: TextIO) -> None:
    from witskit.symbols import default_table

    table = default_table()

    def mnemonic(code: str) -> str:
        symbol = table.get(code) if code else None
        return symbol.name if symbol is not None else ""

    if fmt is QualityFormat.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for i in issues:
            row = (i.source, i.code, mnemonic(i.code), i.kind.value, i.start.isoformat(), i.end.isoformat())
            writer.writerow((*row, i.count, i.detail))
    elif fmt is QualityFormat.jsonl:
        for i in issues:
            out.write(json.dumps({**i.to_dict(), "mnemonic": mnemonic(i.code)}) + "\n")
    else:
        rows = [
            (
                i.source,
                f"{i.code} {mnemonic(i.code)}".strip() or "-",
                i.kind.value,
                i.start.strftime("%Y-%m-%d %H:%M:%S"),
                f"{(i.end - i.start).total_seconds():g} s",
                str(i.count),
                i.detail,
            )
            for i in issues
        ]
        head = ("source", "channel", "issue", "start (UTC)", "lasting", "count", "detail")
        widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head) - 1)]
        for r in [head, *rows]:
            out.write(
                "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] + "\n"
            )


def register(group: typer.Typer) -> None:
    """Add ``quality`` to the ``analyze`` command group."""

    @group.command(
        "quality", short_help="Find gaps, nulls, frozen values, spikes, bad ranges and clock problems."
    )
    @handle_errors
    def quality(
        path: Annotated[
            Path | None, typer.Argument(metavar="PATH", help="A WITS file (or use --db and --source).")
        ] = None,
        db: Annotated[str | None, typer.Option("--db", help="Read stored frames from this database.")] = None,
        source: Annotated[
            str | None, typer.Option("--source", "-s", help="The source to check (with --db).")
        ] = None,
        start: Annotated[
            str | None, typer.Option("--start", help="ISO time, inclusive (naive = UTC).")
        ] = None,
        end: Annotated[str | None, typer.Option("--end", help="ISO time, exclusive.")] = None,
        metric: Annotated[bool, typer.Option("--metric/--fps", help="The rig's unit system.")] = False,
        fmt: Annotated[
            QualityFormat, typer.Option("--format", "-f", case_sensitive=False)
        ] = QualityFormat.table,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
        ] = None,
        frozen_seconds: Annotated[
            float, typer.Option("--frozen-seconds", min=1, help="Repeats at least this long are frozen.")
        ] = 300.0,
        gap_factor: Annotated[
            float, typer.Option("--gap-factor", min=1.1, help="Intervals this many cadences long are gaps.")
        ] = 2.5,
        spike_factor: Annotated[
            float, typer.Option("--spike-factor", min=1, help="Spikes: this many usual steps away.")
        ] = 10.0,
        clock_tolerance: Annotated[
            float,
            typer.Option("--clock-tolerance", min=0, help="Seconds frame time may be from receive time."),
        ] = 300.0,
        limit: Annotated[
            list[str] | None,
            typer.Option("--limit", metavar="CODE=LOW:HIGH", help="Physical limits of a code."),
        ] = None,
    ) -> None:
        """Check a feed's data quality, per channel: gaps (from the feed's own cadence), null runs,
        frozen values, spikes, readings out of their physical range, clock problems.

        One row per issue; a summary by kind goes to stderr. Clock offsets (frame time far from
        receive time) are judged for stored frames only: a file's receive time is today.
        """
        from witskit.analytics.quality import QualitySettings, check_quality
        from witskit.config import load_config
        from witskit.protocol import WITSDecoder

        if (path is None) == (db is None):
            raise UsageError("give a WITS file, or --db URL with --source NAME")
        if db is not None and not source:
            raise UsageError("--db needs --source NAME (see: witskit query --db URL)")
        if path is not None and (start or end):
            raise UsageError("--start and --end select stored frames; they go with --db")
        settings = QualitySettings(
            gap_factor=gap_factor,
            frozen_seconds=frozen_seconds,
            spike_factor=spike_factor,
            clock_tolerance=clock_tolerance,
            check_clock=db is not None,
            limits=_limits(limit),
        )
        decoder = WITSDecoder(metric, timezone=load_config().timezone)
        if path is not None:
            issues = check_quality(_file_frames(path, decoder), settings)
        else:
            assert db is not None
            assert source is not None
            found = asyncio.run(_stored_issues(db, source, start, end, decoder, settings))
            issues = sorted(found, key=lambda i: (i.source, i.start, i.code, i.kind.value))
        if output is None:
            _write(issues, fmt, typer.get_text_stream("stdout"))
        else:
            try:
                with output.open("w", encoding="utf-8", newline="") as out:
                    _write(issues, fmt, out)
            except OSError as exc:
                raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        kinds = Counter(i.kind.value for i in issues)
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        info(f"{len(issues)} issue(s)" + (f": {summary}" if summary else ""))
