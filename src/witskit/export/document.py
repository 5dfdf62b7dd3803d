"""One call from a request (source, range, codes, index) to a LAS or WITSML document.

``witskit export`` and the HTTP route both call :func:`render` with a reader of stored points:
:class:`witskit.storage.Store` is one as it is (its ``query_batches``), and a test or a capture file
can be another. So the command and the route are thin: parse the request, open the store, call
this, send the bytes. Every way a request can fail is a :class:`~witskit.errors.UsageError` that
names what is missing: an unknown code, a text item, a range with no data (for the whole request
or for one code), a depth index without the depth items or with the bit never on bottom.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Protocol

from witskit.errors import UsageError
from witskit.export.las import write_las
from witskit.export.table import (
    BIT_DEPTH,
    HOLE_DEPTH,
    ON_BOTTOM_TOLERANCE,
    Channel,
    IndexKind,
    LogTable,
    Point,
    channels_for,
    depth_table,
    time_table,
)
from witskit.export.witsml import WitsmlIds, witsml_20, witsml_1411
from witskit.symbols import SymbolTable, default_table

__all__ = [
    "DEFAULT_DEPTH_STEP",
    "DEFAULT_TIME_STEP",
    "MAX_CODES",
    "ExportFormat",
    "ExportRequest",
    "PointReader",
    "WitsmlVersion",
    "render",
    "resolve",
]

#: The depth step when none is given, in the depth unit: half a foot or half a metre, the step
#: of most drilling logs.
DEFAULT_DEPTH_STEP = 0.5
#: The time step of a LAS time log when none is given: one second, the rate of a WITS feed.
DEFAULT_TIME_STEP = 1.0
#: Names per request: more channels than any log viewer shows side by side, and each name may
#: stand for several codes of the store, so this bounds what one request can ask for.
MAX_CODES = 100


class ExportFormat(StrEnum):
    """The document written."""

    las = "las"
    witsml = "witsml"


class WitsmlVersion(StrEnum):
    """The WITSML version of a ``witsml`` document."""

    v1411 = "1.4.1.1"
    v20 = "2.0"


class PointReader(Protocol):
    """Where the points come from: :class:`witskit.storage.Store` is one."""

    def query_batches(
        self, source: str, codes: list[str], start: datetime | None, end: datetime | None
    ) -> AsyncGenerator[Sequence[Point], None]:
        """Batches of the points of ``source`` and ``codes`` in ``[start, end)``, in time order."""
        ...


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export. ``codes``: 4-digit codes, mnemonics or record-qualified mnemonics (01.DBTM).

    ``step``: the depth step (depth units) of a depth log; the time step (seconds) of a time log,
    where None writes one row per frame (LAS then uses :data:`DEFAULT_TIME_STEP`). ``metric``:
    the unit system the rig sends. ``well``: the well name (default: the feed's WID item, else
    the source). ``ids``: the WITSML uids and names; without them, ``well_uid``, ``wellbore_uid``
    and ``log_uid`` where given, else uids derived from the source (:func:`default_ids`).
    """

    source: str
    codes: Sequence[str]
    index: IndexKind = IndexKind.time
    start: datetime | None = None
    end: datetime | None = None
    step: float | None = None
    metric: bool = False
    well: str | None = None
    ids: WitsmlIds | None = None
    well_uid: str | None = None
    wellbore_uid: str | None = None
    log_uid: str | None = None
    tz: tzinfo | None = None
    bit_code: str = BIT_DEPTH
    hole_code: str = HOLE_DEPTH
    tolerance: float = ON_BOTTOM_TOLERANCE
    symbols: SymbolTable | None = field(default=None, compare=False)


def resolve(names: Sequence[str], symbols: SymbolTable | None = None) -> list[list[str]]:
    """The codes each name stands for (a bare mnemonic may be in several records: all of them)."""
    table = symbols if symbols is not None else default_table()
    if len(names) > MAX_CODES:
        raise UsageError(f"{len(names)} codes asked for; one export takes at most {MAX_CODES}")
    out: list[list[str]] = []
    for item in names:
        key = item.strip()
        if len(key) == 4 and key.isascii() and key.isdigit():
            out.append([key])
            continue
        head, dot, tail = key.partition(".")
        record = int(head) if dot and head.isascii() and head.isdigit() and tail else None
        name = tail if record is not None else key
        found = table.by_mnemonic(name, record) if name else []
        if not found:
            near = [s.name for s in table.search(name)[:5]] if name else []
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise UsageError(f"unknown code {item!r}: neither a 4-digit code nor a WITS mnemonic{hint}")
        out.append([s.code for s in found])
    if not out:
        raise UsageError("no codes asked for: name the channels to export (e.g. DBTM,ROPA)")
    return out


def _span(request: ExportRequest) -> str:
    lo = request.start.isoformat() if request.start else "the first reading"
    hi = request.end.isoformat() if request.end else "the last"
    return f"{request.source} from {lo} to {hi}"


async def _present(reader: PointReader, request: ExportRequest, codes: list[str]) -> set[str]:
    """The codes of ``codes`` with at least one reading in the range (one pass over the range)."""
    seen: set[str] = set()
    batches = reader.query_batches(request.source, codes, request.start, request.end)
    async with contextlib.aclosing(batches):
        async for batch in batches:
            seen.update(p.code for p in batch)
            if len(seen) == len(codes):
                break
    return seen


async def _table(
    batches: AsyncGenerator[Sequence[Point], None],
    request: ExportRequest,
    channels: list[Channel],
    fmt: ExportFormat,
) -> LogTable:
    if request.index is IndexKind.depth:
        depth_unit = "M" if request.metric else "F"
        return await depth_table(
            batches,
            request.source,
            channels,
            step=request.step if request.step is not None else DEFAULT_DEPTH_STEP,
            depth_unit=depth_unit,
            bit_code=request.bit_code,
            hole_code=request.hole_code,
            tolerance=request.tolerance,
        )
    step = request.step
    if step is None and fmt is ExportFormat.las:
        step = DEFAULT_TIME_STEP
    return await time_table(batches, request.source, channels, step=step)


async def render(
    reader: PointReader,
    request: ExportRequest,
    fmt: ExportFormat,
    version: WitsmlVersion = WitsmlVersion.v1411,
) -> bytes:
    """The document (UTF-8 bytes) for ``request``; raises :class:`UsageError` naming what is missing."""
    table = request.symbols if request.symbols is not None else default_table()
    groups = resolve(request.codes, table)
    wanted = list(dict.fromkeys(code for group in groups for code in group))
    present = await _present(reader, request, wanted)
    if not present:
        raise UsageError(f"no data for {', '.join(request.codes)} in {_span(request)}")
    for name, group in zip(request.codes, groups, strict=True):
        if not present.intersection(group):
            raise UsageError(f"no data for {name} ({', '.join(group)}) in {_span(request)}")
    # A mnemonic several records share keeps the records that have data.
    codes = [c for c in wanted if c in present]
    channels = channels_for(codes, metric=request.metric, symbols=table)
    extra = ["0101"]
    if request.index is IndexKind.depth:
        extra += [request.bit_code, request.hole_code]
    query = list(dict.fromkeys([*codes, *extra]))
    batches = reader.query_batches(request.source, query, request.start, request.end)
    async with contextlib.aclosing(batches):  # a refused log releases the store's cursor at once
        log = await _table(batches, request, channels, fmt)
    if fmt is ExportFormat.las:
        return write_las(log, well=request.well, tz=request.tz).encode("utf-8")
    ids = request.ids
    if ids is None:
        ids = default_ids(request.source, request.index, request.well or log.well)
        ids = replace(
            ids,
            well_uid=request.well_uid or ids.well_uid,
            wellbore_uid=request.wellbore_uid or ids.wellbore_uid,
            log_uid=request.log_uid or ids.log_uid,
        )
    writer = witsml_20 if version is WitsmlVersion.v20 else witsml_1411
    return writer(log, ids, tz=request.tz)


def default_ids(source: str, index: IndexKind, well: str | None) -> WitsmlIds:
    """WITSML ids derived from the source name, when no settings give them."""
    name = well or source
    return WitsmlIds(
        well_uid=source,
        wellbore_uid=f"{source}-wb",
        log_uid=f"{source}-{index.value}",
        well_name=name,
        wellbore_name=name,
        log_name=f"{source} {index.value} log",
    )
