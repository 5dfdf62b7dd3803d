"""render(): one request to one document, and every way a request fails names what is missing."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest
from export_samples import T0, MemoryReader, Reading, drilling

from witskit.errors import UsageError
from witskit.export import ExportFormat, ExportRequest, IndexKind, WitsmlVersion, render, resolve

pytest.importorskip("lasio", reason="LAS export needs lasio: pip install 'witskit[las]'")
pytest.importorskip("lxml", reason="WITSML export needs lxml: pip install 'witskit[witsml]'")

READER = MemoryReader(drilling(60))


def _render(fmt: ExportFormat = ExportFormat.las, **kwargs: object) -> bytes:
    request = ExportRequest(**{"source": "rig-1", "codes": ["ROPA", "0116"], **kwargs})  # type: ignore[arg-type]
    return asyncio.run(render(READER, request, fmt, WitsmlVersion.v20))


def test_resolve_takes_codes_mnemonics_and_record_qualified_mnemonics() -> None:
    groups = resolve(["0113", "ROPA", "01.DBTM", "DBTM"])
    assert groups[:3] == [["0113"], ["0113", "0210"], ["0108"]]
    assert {"0108", "0810"} <= set(groups[3])


def test_an_unknown_code_is_named_with_suggestions() -> None:
    with pytest.raises(UsageError, match=r"unknown code 'ROPX': neither a 4-digit code nor a WITS mnemonic"):
        resolve(["ROPX"])
    with pytest.raises(UsageError, match="no codes asked for"):
        resolve([])
    with pytest.raises(UsageError, match="101 codes asked for; one export takes at most 100"):
        resolve(["0113"] * 101)


def test_a_depth_las_of_the_request() -> None:
    text = _render(index=IndexKind.depth, metric=True, step=1.0).decode()
    assert "STEP.M" in text
    assert "ROPA.m/h" in text
    assert "WOBA.KDN" in text  # no 1.4.1.1 symbol for 10 kN: the WITS string


def test_a_time_las_gets_the_default_one_second_step() -> None:
    text = _render(index=IndexKind.time).decode()
    assert "STEP.s" in text
    assert "1.0 : STEP" in text


def test_a_bare_mnemonic_keeps_the_records_with_data() -> None:
    text = _render(ExportFormat.witsml, codes=["DBTM"]).decode()  # 0108 has data, 0810 and 0910 none
    assert "<Mnemonic>DBTM</Mnemonic>" in text
    assert "DBTM_08" not in text


def test_range_limits_the_rows() -> None:
    start, end = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    text = _render(ExportFormat.witsml, start=start, end=end).decode()
    assert text.count("2026-12-03T10:00:1") == 10  # one row per second from 10 s to 19 s
    assert "2026-12-03T10:00:09" not in text
    assert "2026-12-03T10:00:20" not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "rig-9"}, r"no data for ROPA, 0116 in rig-9"),
        ({"start": T0 + timedelta(days=1)}, r"no data for ROPA, 0116 in rig-1 from 2026-12-04"),
        ({"codes": ["ROPA", "0210"]}, r"no data for 0210 \(0210\) in rig-1"),
        ({"codes": ["NOPE"]}, r"unknown code 'NOPE'"),
        ({"codes": ["WID"]}, r"WID \(0101.*is text"),
        ({"index": IndexKind.depth, "bit_code": "0810"}, r"no DBTM \(0810.*depth index"),
    ],
)
def test_bad_requests_name_what_is_missing(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _render(**kwargs)


def test_a_store_without_hole_depth_cannot_give_a_depth_index() -> None:
    reader = MemoryReader([r for r in drilling(10) if r.code != "0110"])
    request = ExportRequest("rig-1", ["ROPA"], IndexKind.depth)
    with pytest.raises(UsageError, match=r"no DMEA \(0110"):
        asyncio.run(render(reader, request, ExportFormat.las))
    only_text = MemoryReader([Reading(T0, "0101", "A-1")])
    with pytest.raises(UsageError, match="no data for ROPA"):
        asyncio.run(render(only_text, ExportRequest("rig-1", ["ROPA"]), ExportFormat.las))


@pytest.mark.parametrize(("fmt", "extra"), [(ExportFormat.las, "las"), (ExportFormat.witsml, "witsml")])
def test_a_missing_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, fmt: ExportFormat, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, "lasio" if extra == "las" else "lxml.etree", None)
    with pytest.raises(UsageError, match=rf"pip install 'witskit\[{extra}\]'"):
        _render(fmt)
