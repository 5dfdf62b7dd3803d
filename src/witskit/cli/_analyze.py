"""``witskit analyze``: drilling analytics over a WITS file or a stored range.

``analyze rig-state`` writes the rig state of every record-1 frame; ``analyze kpi`` the drilling
KPIs. Both read a file with the decoder or a source of the store (``--db``). Other analyses join the
same group: write ``@analyze.command(...)`` in a module and call it from :func:`register`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from witskit.cli import _analyze_quality
from witskit.cli._console import handle_errors, warn
from witskit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.analytics import Sample, Section, StateSample

__all__ = ["analyze", "register"]

#: The ``witskit analyze`` group; each analysis is a command of it.
analyze = typer.Typer(
    name="analyze",
    help="Drilling analytics over a WITS file or a stored source: rig state, KPIs, data quality.",
    no_args_is_help=True,
)


class StateFormat(StrEnum):
    """What ``analyze rig-state`` writes."""

    csv = "csv"
    jsonl = "jsonl"
    table = "table"


class KpiFormat(StrEnum):
    """What ``analyze kpi`` writes."""

    json = "json"
    table = "table"


PathArg = Annotated[
    Path | None, typer.Argument(metavar="PATH", help="WITS file to read.", show_default=False)
]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Read a stored source from this database URL instead of a file.")
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="The stored source (rig) to read, with --db.")
]
StartOpt = Annotated[str | None, typer.Option("--start", help="With --db: from this time (ISO 8601, UTC).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="With --db: up to this time, excluded.")]
MetricOpt = Annotated[bool, typer.Option("--metric/--fps", help="Unit system the rig sends.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.", dir_okay=False)
]


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` group, with every analysis's command, to the ``witskit`` command."""
    _analyze_quality.register(analyze)
    app.add_typer(
        analyze, name="analyze", short_help="Rig state, KPIs and data quality of a file or a stored source."
    )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()  # as witskit query writes it: 2026-01-01T06:00:00+00:00


def _file_samples(path: Path, metric: bool) -> Iterator[Sample | object]:
    from witskit.errors import FrameError
    from witskit.protocol import WITSDecoder, iter_decode

    bad = 0
    for event in iter_decode(path, decoder=WITSDecoder(use_metric_units=metric)):
        if isinstance(event, FrameError):
            bad += 1
            if bad == 1:
                warn(f"{path}: {event}")
            continue
        yield event
    if bad > 1:
        warn(f"{path}: {bad} malformed frames skipped in all")


async def _stored_samples(url: str, source: str, start: str | None, end: str | None) -> list[Sample]:
    from witskit.analytics import RIG_STATE_CODES, samples_from_points
    from witskit.storage import Store
    from witskit.storage.query import integer_codes, stored_value
    from witskit.storage.schema import from_micros

    store = await Store.open(url, migrate=False, must_exist=True)
    try:
        known = [s.name for s in await store.sources()]
        if source not in known:
            raise UsageError(
                f"no source named {source!r} in the store; its sources: {', '.join(known) or 'none'}"
            )
        scan = await store.scan(source, list(RIG_STATE_CODES), start, end)
        ints = integer_codes()

        async def points() -> AsyncIterator[tuple[datetime, str, object, int]]:
            async with contextlib.aclosing(scan):
                async for batch in scan:
                    for _sid, us, code, num, txt, key, _idx in batch:
                        yield from_micros(us), code, stored_value(code, num, txt, ints), key

        rows = [p async for p in points()]
    finally:
        await store.aclose()
    return list(samples_from_points(rows))  # type: ignore[arg-type]


def _input(
    path: Path | None, db: str | None, source: str | None, start: str | None, end: str | None, metric: bool
) -> Iterable[Sample | object]:
    if (path is None) == (db is None):
        raise UsageError("give a WITS file PATH or --db URL with --source NAME (one of the two)")
    if db is not None:
        if not source:
            raise UsageError("--db needs --source NAME: the rig to analyse")
        return asyncio.run(_stored_samples(db, source, start, end))
    if start or end or source:
        raise UsageError("--source, --start and --end go with --db; a file is read whole")
    assert path is not None
    if not path.is_file():  # now, before any output is written
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    return _file_samples(path, metric)


def _classified(items: Iterable[Sample | object], metric: bool) -> Iterator[StateSample]:
    from witskit.analytics import RigStateSettings, classify

    return classify(items, RigStateSettings(metric=metric))  # type: ignore[arg-type]


@contextlib.contextmanager
def _out(output: Path | None) -> Iterator[IO[str]]:
    if output is None:
        yield sys.stdout
        return
    try:
        fh = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"{output}: cannot write: {exc.strerror}") from None
    with fh:
        yield fh


@analyze.command("rig-state", short_help="The rig state of every record-1 frame (CSV, JSON Lines, table).")
@handle_errors
def rig_state(
    path: PathArg = None,
    *,
    db: DbOpt = None,
    source: SourceOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    metric: MetricOpt = False,
    fmt: Annotated[StateFormat, typer.Option("--format", "-f", case_sensitive=False)] = StateFormat.csv,
    output: OutputOpt = None,
) -> None:
    """Write the rig state of every record-1 frame: CSV ``time,state`` (time ISO 8601 UTC) by default.

    States: rotary_drilling, slide_drilling, reaming, back_reaming, circulating, tripping_in,
    tripping_out, in_slips, stationary, unknown (docs/analytics.md defines them).
    """
    items = _input(path, db, source, start, end, metric)
    with _out(output) as fh:
        write = fh.write
        if fmt is StateFormat.csv:
            write("time,state\n")
            for row in _classified(items, metric):
                write(f"{_iso(row.time)},{row.state.value}\n")
        elif fmt is StateFormat.jsonl:
            for row in _classified(items, metric):
                write(json.dumps({"time": _iso(row.time), "state": row.state.value}) + "\n")
        else:
            write(f"{'time':<25} state\n")
            for row in _classified(items, metric):
                write(f"{_iso(row.time):<25} {row.state.value}\n")


def _section(text: str) -> Section:
    from witskit.analytics import Section

    name, sep, rest = text.rpartition(":")
    top, sep2, bottom = rest.partition("-")
    try:
        if not sep or not sep2 or not name:
            raise ValueError
        return Section(name, float(top), float(bottom))
    except ValueError:
        raise UsageError(f"--section {text!r}: expected NAME:TOP-BOTTOM, e.g. '12-1/4in:1500-6200'") from None


@analyze.command("kpi", short_help="Drilling KPIs per range, day and well section.")
@handle_errors
def kpi(
    path: PathArg = None,
    *,
    db: DbOpt = None,
    source: SourceOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    metric: MetricOpt = False,
    section: Annotated[
        list[str] | None,
        typer.Option("--section", help="A well section NAME:TOP-BOTTOM (hole depth, feed units); repeat."),
    ] = None,
    fmt: Annotated[KpiFormat, typer.Option("--format", "-f", case_sensitive=False)] = KpiFormat.table,
    output: OutputOpt = None,
) -> None:
    """Drilling KPIs: on-bottom hours, footage and ROP, connections, tripping speed, flat time."""
    from witskit.analytics import compute_kpis

    sections = [_section(s) for s in section or []]
    items = _input(path, db, source, start, end, metric)
    report = compute_kpis(_classified(items, metric), sections=sections, metric=metric)
    data = report.to_dict()
    with _out(output) as fh:
        if fmt is KpiFormat.json:
            fh.write(json.dumps(data, indent=2) + "\n")
            return
        unit = data["units"]["depth"]
        rows = (
            [("range", data["total"])]
            + list(data["days"].items())
            + [(f"section {k}", v) for k, v in data["sections"].items()]
        )
        fh.write(
            f"{'':22}{'hours':>8}{'rotary h':>9}{'slide h':>8}{'made ' + unit:>9}{'ROP/h':>7}"
            f"{'conn':>5}{'S2S s':>7}{'W2W s':>7}{'trip in/h':>10}{'trip out/h':>11}"
            f"{'flat h':>7}{'circ h':>7}\n"
        )
        for name, k in rows:
            c = k["connections"]
            tin, tout = k["tripping"]["in"]["speed_per_hour"], k["tripping"]["out"]["speed_per_hour"]
            fh.write(
                f"{name:22}{k['total_hours']:>8.2f}{k['on_bottom_hours']['rotary']:>9.2f}"
                f"{k['on_bottom_hours']['slide']:>8.2f}{k['footage']['total']:>9.1f}"
                f"{_num(k['on_bottom_rop']['total']):>7}{c['count']:>5}{_num(c['slips_to_slips_avg_s']):>7}"
                f"{_num(c['weight_to_weight_avg_s']):>7}{_num(tin):>10}{_num(tout):>11}"
                f"{k['flat_hours']:>7.2f}{k['circulating_hours']:>7.2f}\n"
            )


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"
