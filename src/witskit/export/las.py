"""LAS 2.0 files from a :class:`~witskit.export.table.LogTable`, written with lasio.

~V says ``VERS 2.0`` and ``WRAP NO``; ~W has STRT, STOP, STEP, NULL, WELL, SRVC (WitsKit), DATE
(the time of the log's first reading, ISO 8601 with offset) and the empty company, field and
location lines lasio always writes; ~C has the index
curve, then one curve per channel: its WITS mnemonic, its unit (:func:`witskit.export.uom.las_unit`)
and its description from the WITS dictionary with the 4-digit code; ~A the data, nulls as NULL.

The time index is the curve ``TIME`` in seconds (unit ``s``) elapsed since ~W ``DATE``, which is
the first reading's time in ISO 8601 with its UTC offset. Why not dates in the curve: LAS 2.0
requires numeric data in ~A, lasio cannot write a datetime curve (lasio issue 492) and reads text
dates only with special options, other readers shift columns on them (lasio issue 565), and
lascheck accepts DEPT, DEPTH, TIME or INDEX as the index. Elapsed seconds keep every value a number
with millisecond resolution that every LAS reader plots. A time log with a step (what
``witskit export las`` writes, 1 s by default) has a regular index; one without has a row per
frame time and STEP 0, the LAS 2.0 value for "varies" (which lascheck 0.1.5 cannot check: it
divides by STEP).
"""

from __future__ import annotations

import importlib
import io
import math
from datetime import datetime, tzinfo
from typing import Any, Final

from witskit.errors import UsageError
from witskit.export.table import IndexKind, LogTable, clean_text
from witskit.export.uom import las_unit

__all__ = ["LAS_NULL", "write_las"]

#: The null value of the LAS files written here: the industry's usual -999.25.
LAS_NULL: Final = -999.25
#: Digits after the point in ~A: WITS feeds send at most 4, and the time index keeps milliseconds.
_FORMAT: Final = "%.4f"


def _lasio() -> Any:
    try:
        return importlib.import_module("lasio")
    except ImportError:
        raise UsageError("LAS export needs lasio: pip install 'witskit[las]'") from None


def _when(time: datetime, tz: tzinfo | None) -> str:
    return time.astimezone(tz).isoformat() if tz else time.isoformat()


def write_las(table: LogTable, *, well: str | None = None, tz: tzinfo | None = None) -> str:
    """The LAS 2.0 text of ``table``.

    ``well`` names the well in ~W WELL; without it the feed's WID item, else the source name.
    ``tz`` is the offset ~W DATE is written in (UTC by default).
    """
    lasio = _lasio()
    numpy = importlib.import_module("numpy")
    if not table.rows:
        raise UsageError(f"no data for {table.source} in this range: nothing to write")
    las = lasio.LASFile()
    las.well["WELL"].value = clean_text(well or table.well or table.source)
    las.well["SRVC"].value = "WitsKit"
    las.well["NULL"].value = LAS_NULL
    las.params.append(lasio.HeaderItem("SRC", "", clean_text(table.source), "WITS source in WitsKit"))
    if table.kind is IndexKind.time:
        times = [t for t in table.index if isinstance(t, datetime)]
        start = times[0]
        index = numpy.array([round((t - start).total_seconds(), 3) for t in times], dtype=float)
        las.well["DATE"].value = _when(start, tz)
        las.well["DATE"].descr = "First reading; TIME is seconds after it"
        las.append_curve("TIME", index, unit="s", descr="Elapsed time since DATE")
    else:
        index = numpy.array(table.index, dtype=float)
        if table.first_time is not None:
            las.well["DATE"].value = _when(table.first_time, tz)
            las.well["DATE"].descr = "First on-bottom reading"
        # LAS 2.0 names the depth units M, F or FT: the WITS strings themselves.
        las.append_curve("DEPT", index, unit=table.index_unit, descr="Bit depth (on bottom)")
    step = float(table.step or 0.0)
    for channel, column in zip(table.channels, table.columns, strict=True):
        data = numpy.array([math.nan if v is None else v for v in column], dtype=float)
        descr = f"{channel.description} (WITS {channel.code})"
        las.append_curve(channel.mnemonic, data, unit=las_unit(channel.unit), descr=descr)
    out = io.StringIO()
    las.write(
        out, version=2.0, wrap=False, fmt=_FORMAT, STRT=float(index[0]), STOP=float(index[-1]), STEP=step
    )
    return out.getvalue()
