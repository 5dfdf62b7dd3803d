"""Pure writers of the industry's formats: LAS 2.0 and WITSML 1.4.1.1 / 2.0 logs.

Stored points become a :class:`~witskit.export.table.LogTable` (a time index, or a depth index
resampled while on bottom), which :func:`write_las`, :func:`witsml_1411` and :func:`witsml_20`
write. :func:`render` does it all for one request and is what ``witskit export`` and the HTTP
route call. lasio (``witskit[las]``) and lxml (``witskit[witsml]``) are imported on first use.
See ``docs/outputs.md``.
"""

from __future__ import annotations

from witskit.export.capture import CaptureReader
from witskit.export.document import (
    ExportFormat,
    ExportRequest,
    PointReader,
    WitsmlVersion,
    default_ids,
    render,
    resolve,
)
from witskit.export.las import LAS_NULL, write_las
from witskit.export.table import Channel, IndexKind, LogTable, channels_for, depth_table, time_table
from witskit.export.uom import las_unit, witsml_unit
from witskit.export.witsml import WitsmlIds, witsml_20, witsml_1411

__all__ = [
    "LAS_NULL",
    "CaptureReader",
    "Channel",
    "ExportFormat",
    "ExportRequest",
    "IndexKind",
    "LogTable",
    "PointReader",
    "WitsmlIds",
    "WitsmlVersion",
    "channels_for",
    "default_ids",
    "depth_table",
    "las_unit",
    "render",
    "resolve",
    "time_table",
    "witsml_20",
    "witsml_1411",
    "witsml_unit",
    "write_las",
]
