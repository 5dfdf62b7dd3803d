"""WITSML documents from a :class:`~witskit.export.table.LogTable`: a 1.4.1.1 ``<logs>`` and a 2.0 ``Log``.

Both are built as lxml element trees, so every value is escaped by the serializer; nothing is
assembled by string concatenation. Units are Energistics symbols (:mod:`witskit.export.uom`).

WITSML 1.4.1.1 (``http://www.witsml.org/schemas/1series``, what most stores and clients still
speak): one ``<log>`` with the well, wellbore and log uids given, ``indexType`` ``date time`` or
``measured depth``, a ``logCurveInfo`` per channel (the index first) with its mnemonic, unit, null
value and description, and ``logData`` with ``mnemonicList``, ``unitList`` and one ``data`` row per
index value: times in ISO 8601 with their UTC offset, nulls as the ``nullValue`` (-999.25).

WITSML 2.0 (``http://www.energistics.org/energyml/data/witsmlv2``): a ``Log`` holding one
``ChannelSet`` with the index, a ``Channel`` per channel and ``Data`` as the JSON array of rows the
2.0 schema describes (``null`` for no value).
"""

from __future__ import annotations

import importlib
import json
import math
import uuid as uuidlib
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from witskit._version import __version__
from witskit.errors import UsageError
from witskit.export.table import IndexKind, LogTable, clean_text
from witskit.export.uom import witsml_unit

__all__ = ["NS_20", "NS_1411", "NS_EML", "WitsmlIds", "witsml_20", "witsml_1411"]

NS_1411: Final = "http://www.witsml.org/schemas/1series"
NS_20: Final = "http://www.energistics.org/energyml/data/witsmlv2"
NS_EML: Final = "http://www.energistics.org/energyml/data/commonv2"
#: The null value of the 1.4.1.1 curves, written in ``data`` rows for no reading (as in LAS).
NULL_1411: Final = "-999.25"


@dataclass(frozen=True, slots=True)
class WitsmlIds:
    """Who the log belongs to: the uids (1.4.1.1) and names of the well, wellbore and log.

    WITSML 2.0 identifies objects by UUID: the ones written are derived from these uids (UUID 5),
    so the same ids always give the same UUIDs.
    """

    well_uid: str
    wellbore_uid: str
    log_uid: str
    well_name: str
    wellbore_name: str
    log_name: str
    #: The logging company: WITSML 2.0 requires one per channel.
    company: str = "WitsKit"


def _etree() -> Any:
    try:
        return importlib.import_module("lxml.etree")
    except ImportError:
        raise UsageError("WITSML export needs lxml: pip install 'witskit[witsml]'") from None


def _iso(value: datetime, tz: tzinfo | None) -> str:
    return value.astimezone(tz or UTC).isoformat()


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else NULL_1411


def _cell(value: float | None) -> str:
    return NULL_1411 if value is None else _num(value)


def _check(table: LogTable, ids: WitsmlIds) -> WitsmlIds:
    """``ids`` fit for the schemas (see :func:`clean_text`), once the table is known to hold rows."""
    if not table.rows:
        raise UsageError(f"no data for {table.source} in this range: nothing to write")
    fit = WitsmlIds(*(clean_text(v) for v in astuple(ids)))
    # 1.4.1.1 uids hold no spaces (pattern [^ ]*)
    return replace(
        fit,
        well_uid=fit.well_uid.replace(" ", "_"),
        wellbore_uid=fit.wellbore_uid.replace(" ", "_"),
        log_uid=fit.log_uid.replace(" ", "_"),
    )


def _index_text(table: LogTable, tz: tzinfo | None) -> list[str]:
    if table.kind is IndexKind.time:
        return [_iso(t, tz) for t in table.index if isinstance(t, datetime)]
    return [_num(float(d)) for d in table.index if not isinstance(d, datetime)]


def witsml_1411(table: LogTable, ids: WitsmlIds, *, tz: tzinfo | None = None) -> bytes:
    """A WITSML 1.4.1.1 ``<logs>`` document (UTF-8 bytes) holding ``table`` as one log."""
    ids = _check(table, ids)
    et = _etree()
    version = "1.4.1.1"
    q = f"{{{NS_1411}}}"

    def sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
        el = et.SubElement(parent, q + tag, attrs)
        if text is not None:
            el.text = text
        return el

    logs = et.Element(q + "logs", {"version": version}, nsmap={None: NS_1411})
    log = sub(logs, "log", uidWell=ids.well_uid, uidWellbore=ids.wellbore_uid, uid=ids.log_uid)
    sub(log, "nameWell", ids.well_name)
    sub(log, "nameWellbore", ids.wellbore_name)
    sub(log, "name", ids.log_name)
    sub(log, "objectGrowing", "false")
    sub(log, "serviceCompany", "WitsKit")
    sub(
        log, "description", clean_text(f"WITS data of {table.source}, exported by WitsKit {__version__}", 256)
    )
    index = _index_text(table, tz)
    if table.kind is IndexKind.time:
        index_name, index_unit = "TIME", "s"
        sub(log, "indexType", "date time")
        sub(log, "startDateTimeIndex", index[0])
        sub(log, "endDateTimeIndex", index[-1])
    else:
        index_name, index_unit = "DEPT", witsml_unit(table.index_unit, version)
        sub(log, "indexType", "measured depth")
        sub(log, "startIndex", index[0], uom=index_unit)
        sub(log, "endIndex", index[-1], uom=index_unit)
        if table.step:
            sub(log, "stepIncrement", _num(table.step), uom=index_unit)
    sub(log, "direction", "increasing")
    sub(log, "indexCurve", index_name)
    sub(log, "nullValue", NULL_1411)
    units = [index_unit, *(witsml_unit(ch.unit, version) for ch in table.channels)]
    mnemonics = [index_name, *(ch.mnemonic for ch in table.channels)]
    descriptions = [
        "Time" if table.kind is IndexKind.time else "Bit depth (on bottom)",
        *(f"{ch.description} (WITS {ch.code})" for ch in table.channels),
    ]
    for n, (mnemonic, unit, descr) in enumerate(zip(mnemonics, units, descriptions, strict=True)):
        info = sub(log, "logCurveInfo", uid=mnemonic)
        sub(info, "mnemonic", mnemonic)
        sub(info, "unit", unit)
        sub(info, "nullValue", NULL_1411)
        column = None if n == 0 else table.columns[n - 1]
        values = [i for i, v in enumerate(column) if v is not None] if column is not None else None
        if values is None or values:
            lo, hi = (0, table.rows - 1) if values is None else (values[0], values[-1])
            if table.kind is IndexKind.time:
                sub(info, "minDateTimeIndex", index[lo])
                sub(info, "maxDateTimeIndex", index[hi])
            else:
                sub(info, "minIndex", index[lo], uom=units[0])
                sub(info, "maxIndex", index[hi], uom=units[0])
        sub(info, "curveDescription", descr)
        sub(info, "typeLogData", "date time" if n == 0 and table.kind is IndexKind.time else "double")
    data = sub(log, "logData")
    sub(data, "mnemonicList", ",".join(mnemonics))
    sub(data, "unitList", ",".join(units))
    for row, key in enumerate(index):
        cells = [key, *(_cell(c[row]) for c in table.columns)]
        sub(data, "data", ",".join(cells))
    return bytes(et.tostring(logs, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _uuid(*parts: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "witskit:" + "/".join(parts)))


def witsml_20(table: LogTable, ids: WitsmlIds, *, tz: tzinfo | None = None) -> bytes:
    """A WITSML 2.0 ``Log`` document (UTF-8 bytes) with one ``ChannelSet`` holding ``table``."""
    ids = _check(table, ids)
    et = _etree()
    w, e = f"{{{NS_20}}}", f"{{{NS_EML}}}"
    now = datetime.now(UTC).replace(microsecond=0).isoformat()

    def sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
        el = et.SubElement(parent, tag, attrs)
        if text is not None:
            el.text = text
        return el

    def citation(parent: Any, title: str) -> None:
        cit = sub(parent, e + "Citation")
        sub(cit, e + "Title", title)
        sub(cit, e + "Originator", "WitsKit")
        sub(cit, e + "Creation", now)
        sub(cit, e + "Format", f"WitsKit {__version__}")

    time_log = table.kind is IndexKind.time
    index = _index_text(table, tz)
    index_unit = "s" if time_log else witsml_unit(table.index_unit, "2.0")
    index_name = "TIME" if time_log else "DEPT"
    log_uuid = _uuid(ids.well_uid, ids.wellbore_uid, ids.log_uid)
    log = et.Element(
        w + "Log", {"schemaVersion": "2.0", "uuid": log_uuid}, nsmap={None: NS_20, "eml": NS_EML}
    )
    citation(log, ids.log_name)
    sub(log, w + "TimeDepth", "time" if time_log else "depth")
    wellbore = sub(log, w + "Wellbore")
    sub(wellbore, e + "ContentType", "application/x-witsml+xml;version=2.0;type=Wellbore")
    sub(wellbore, e + "Title", ids.wellbore_name)
    sub(wellbore, e + "Uuid", _uuid(ids.well_uid, ids.wellbore_uid))
    channel_set = sub(log, w + "ChannelSet", schemaVersion="2.0", uuid=_uuid(log_uuid, "set"))
    citation(channel_set, f"{ids.log_name} channels")

    def add_index(parent: Any) -> None:
        idx = sub(parent, w + "Index")
        sub(idx, w + "IndexType", "date time" if time_log else "measured depth")
        sub(idx, w + "Uom", index_unit)
        sub(idx, w + "Direction", "increasing")
        sub(idx, w + "Mnemonic", index_name)

    add_index(channel_set)
    for channel in table.channels:
        ch = sub(channel_set, w + "Channel", schemaVersion="2.0", uuid=_uuid(log_uuid, channel.code))
        citation(ch, f"{channel.description} (WITS {channel.code})")
        sub(ch, w + "Mnemonic", channel.mnemonic)
        sub(ch, w + "DataType", "double")
        sub(ch, w + "Uom", witsml_unit(channel.unit, "2.0"))
        sub(ch, w + "GrowingStatus", "closed")
        sub(ch, w + "TimeDepth", "time" if time_log else "depth")
        kind = sub(ch, w + "ChannelClass")
        sub(kind, e + "ContentType", "application/x-eml+xml;version=2.1;type=PropertyKind")
        sub(kind, e + "Title", channel.description)
        sub(kind, e + "Uuid", _uuid("property", channel.code))
        sub(ch, w + "LoggingCompanyName", ids.company)
        add_index(ch)
    rows: list[list[Any]] = []
    for row, key in enumerate(index):
        first: Any = key if time_log else float(key)
        rows.append([first, *(c[row] for c in table.columns)])
    holder = sub(channel_set, w + "Data")
    sub(holder, w + "Data", json.dumps(rows, allow_nan=False, separators=(",", ":")))
    return bytes(et.tostring(log, xml_declaration=True, encoding="UTF-8", pretty_print=True))
