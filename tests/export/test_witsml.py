"""WITSML documents: valid against the Energistics schemas, values escaped, numbers read back."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta, timezone

import pytest
from export_samples import batches_of, drilling

from support.energistics import schema_problem
from witskit.export import LogTable, WitsmlIds, channels_for, depth_table, time_table, witsml_20, witsml_1411
from witskit.export.witsml import NS_20, NS_1411

etree = pytest.importorskip("lxml.etree", reason="WITSML export needs lxml: pip install 'witskit[witsml]'")
pytest.importorskip("komle", reason="the schema bindings: pip install komle-plus (in witskit[dev])")

CHANNELS = channels_for(["0108", "0113", "0116"], metric=True)
IDS = WitsmlIds("w<1>", "wb&1", 'log"1', "Well <A> & 'B'", "Wellbore 1", "Log ]]> 1")


def _tables() -> dict[str, LogTable]:
    readings = drilling(40)
    return {
        "depth": asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="M")),
        "time": asyncio.run(time_table(batches_of(readings), "rig-1", CHANNELS)),
    }


TABLES = _tables()
WRITERS = {"1.4.1.1": witsml_1411, "2.0": witsml_20}
CASES = [(v, k) for v in sorted(WRITERS) for k in sorted(TABLES)]


@pytest.mark.parametrize(("version", "kind"), CASES)
def test_documents_are_valid_against_the_energistics_schema(version: str, kind: str) -> None:
    document = WRITERS[version](TABLES[kind], IDS)
    assert schema_problem(document, version) is None


@pytest.mark.parametrize("version", sorted(WRITERS))
def test_the_schema_check_can_fail(version: str) -> None:
    document = WRITERS[version](TABLES["time"], IDS)
    broken = document.replace(b"<mnemonic>", b"<mnemonic2>", 1).replace(b"</mnemonic>", b"</mnemonic2>", 1)
    if version == "2.0":
        broken = document.replace(b"<Mnemonic>", b"<Mnemonic2>", 1).replace(
            b"</Mnemonic>", b"</Mnemonic2>", 1
        )
    assert broken != document
    assert schema_problem(broken, version) is not None


def _1411(table: LogTable, **kwargs: object) -> object:
    return etree.fromstring(witsml_1411(table, IDS, **kwargs))  # type: ignore[arg-type]


def test_1411_log_header_curves_and_data() -> None:
    root = _1411(TABLES["time"])
    ns = {"w": NS_1411}
    log = root.find("w:log", ns)
    assert root.get("version") == "1.4.1.1"
    assert (log.get("uidWell"), log.get("uidWellbore"), log.get("uid")) == ("w<1>", "wb&1", 'log"1')
    assert log.findtext("w:nameWell", namespaces=ns) == "Well <A> & 'B'"
    assert log.findtext("w:name", namespaces=ns) == "Log ]]> 1"
    assert log.findtext("w:indexType", namespaces=ns) == "date time"
    infos = log.findall("w:logCurveInfo", ns)
    assert [i.findtext("w:mnemonic", namespaces=ns) for i in infos] == ["TIME", "DBTM", "ROPA", "WOBA"]
    assert [i.findtext("w:unit", namespaces=ns) for i in infos] == ["s", "m", "m/h", "KDN"]
    assert all(i.findtext("w:nullValue", namespaces=ns) == "-999.25" for i in infos)
    data = log.find("w:logData", ns)
    assert data.findtext("w:mnemonicList", namespaces=ns) == "TIME,DBTM,ROPA,WOBA"
    assert data.findtext("w:unitList", namespaces=ns) == "s,m,m/h,KDN"
    rows = [r.text.split(",") for r in data.findall("w:data", ns)]
    table = TABLES["time"]
    assert len(rows) == table.rows
    for row, when in zip(rows, table.index, strict=True):
        assert row[0] == when.isoformat()  # type: ignore[union-attr]
    for n, column in enumerate(table.columns, start=1):
        assert [None if r[n] == "-999.25" else float(r[n]) for r in rows] == column


def test_1411_times_carry_the_offset_asked_for() -> None:
    cst = timezone(timedelta(hours=-6))
    root = _1411(TABLES["time"], tz=cst)
    first = root.findtext(f"{{{NS_1411}}}log/{{{NS_1411}}}startDateTimeIndex")
    assert first == TABLES["time"].index[0].astimezone(cst).isoformat()  # type: ignore[union-attr]
    assert first.endswith("-06:00")


def test_1411_depth_log_has_depth_index_and_step() -> None:
    root = _1411(TABLES["depth"])
    ns = {"w": NS_1411}
    log = root.find("w:log", ns)
    assert log.findtext("w:indexType", namespaces=ns) == "measured depth"
    assert log.find("w:stepIncrement", ns).get("uom") == "m"
    assert log.findtext("w:startIndex", namespaces=ns) == repr(float(TABLES["depth"].index[0]))


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_20_channel_set_holds_the_data_as_json_rows(kind: str) -> None:
    table = TABLES[kind]
    root = etree.fromstring(witsml_20(table, IDS))
    ns = {"w": NS_20}
    channels = root.findall("w:ChannelSet/w:Channel", ns)
    assert [c.findtext("w:Mnemonic", namespaces=ns) for c in channels] == ["DBTM", "ROPA", "WOBA"]
    assert [c.findtext("w:Uom", namespaces=ns) for c in channels] == ["m", "m/h", "10 kN"]
    rows = json.loads(root.findtext("w:ChannelSet/w:Data/w:Data", namespaces=ns))
    assert len(rows) == table.rows
    for n, column in enumerate(table.columns, start=1):
        assert [r[n] for r in rows] == column
    if kind == "time":
        assert [r[0] for r in rows] == [t.isoformat() for t in table.index]  # type: ignore[union-attr]
    else:
        assert [r[0] for r in rows] == [float(d) for d in table.index]


def test_20_uuids_are_stable_for_the_same_ids() -> None:
    a = etree.fromstring(witsml_20(TABLES["time"], IDS))
    b = etree.fromstring(witsml_20(TABLES["time"], IDS))
    assert a.get("uuid") == b.get("uuid")
    other = etree.fromstring(witsml_20(TABLES["time"], WitsmlIds("x", "y", "z", "n", "n", "n")))
    assert other.get("uuid") != a.get("uuid")


@pytest.mark.parametrize("version", sorted(WRITERS))
def test_hostile_names_from_the_feed_or_the_caller_still_give_a_valid_document(version: str) -> None:
    wid = "A-1\x00\x1b[31m\r\nDROP <x>" + "y" * 100
    readings = [r if r.code != "0101" else type(r)(r.time, r.code, wid) for r in drilling(5)]
    table = asyncio.run(time_table(batches_of(readings), "rig\x07-1", CHANNELS))
    assert table.well is not None
    assert table.well.startswith("A-1 [31m DROP <x>yy")
    assert len(table.well) == 64
    ids = WitsmlIds("w\x01" + "1" * 80, "wb", "log", table.well, "wb\ufffe", "log")
    document = WRITERS[version](table, ids)
    assert schema_problem(document, version) is None
    if version == "1.4.1.1":
        assert b"<nameWell>A-1 [31m DROP &lt;x&gt;yy" in document
        assert b'uidWell="w_111' in document
