"""CaptureReader: a WITS capture file read as the store would return it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from witskit.errors import UsageError
from witskit.export import CaptureReader
from witskit.export import capture as capture_module

FRAMES = (
    b"&&\r\n0105260101\r\n0106060000\r\n01083650.4\r\n011323.4\r\n!!\r\n"
    b"garbage line\r\n"
    b"&&\r\n0205260101\r\n0206055959\r\n02101.5\r\n!!\r\n"
    b"&&\r\n0105260101\r\n0106060001\r\n01083650.5\r\n0113-999.25\r\n!!\r\n"
)


def _read(
    reader: CaptureReader, codes: list[str], source: str | None = None
) -> list[tuple[str, str, object]]:
    async def go() -> list[tuple[str, str, object]]:
        out = []
        async for batch in reader.query_batches(source or reader.source, codes, None, None):
            out += [(p.time.strftime("%H:%M:%S"), p.code, p.value) for p in batch]
        return out

    return asyncio.run(go())


def test_points_come_in_time_order_across_records_and_bad_stretches_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(FRAMES)
    reader = CaptureReader.open(path)
    assert reader.source == "rig.wits"
    assert reader.bad_stretches == 1
    assert _read(reader, ["0108", "0113", "0210"]) == [
        ("05:59:59", "0210", 1.5),
        ("06:00:00", "0108", 3650.4),
        ("06:00:00", "0113", 23.4),
        ("06:00:01", "0108", 3650.5),
        ("06:00:01", "0113", None),  # the null sentinel stays null
    ]
    assert _read(reader, ["0108"], source="other") == []


def test_the_feeds_time_zone_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(FRAMES)
    reader = CaptureReader.open(path, timezone="America/Chicago")  # UTC-6 in January
    assert _read(reader, ["0108"])[0][0] == "12:00:00"


def test_a_capture_too_large_for_memory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rig.wits"
    path.write_bytes(FRAMES * 3)
    monkeypatch.setattr(capture_module, "MAX_CAPTURE_POINTS", 5)
    with pytest.raises(UsageError, match="import it into the store"):
        CaptureReader.open(path)
