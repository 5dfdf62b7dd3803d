"""``witskit analyze quality`` through its argv entry point: a file, a stored range, bad arguments."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from support.commands import clean_env, run_witskit
from support.crafted import frame
from witskit.protocol import encode_frame


def wits_file(path: Path) -> Path:
    """60 s of a 1 Hz feed with 5 frames missing (30-34) and one spike of standpipe pressure (at 50)."""
    raw = b"".join(
        encode_frame([("0105", 260101), ("0106", 60000 + i), ("0121", 6000 if i == 50 else 2000 + i % 3)])
        for i in range(60)
        if not 30 <= i < 35
    )
    path.write_bytes(raw)
    return path


def test_a_file_gives_one_csv_row_per_issue(tmp_path: Path) -> None:
    wits_file(tmp_path / "rig.wits")
    proc = run_witskit("analyze", "quality", "rig.wits", "--format", "csv", env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "source,code,mnemonic,kind,start,end,count,detail",
        "rig.wits,,,gap,2026-01-01T06:00:29+00:00,2026-01-01T06:00:35+00:00,5,record 1: no data for 6 s",
        "rig.wits,0121,SPPA,spike,2026-01-01T06:00:50+00:00,2026-01-01T06:00:50+00:00,1,"
        "6000 PSI between 2001 and 2000 PSI",
    ]
    assert "2 issue(s): gap 1, spike 1" in proc.stderr


def test_the_table_and_jsonl_say_the_same(tmp_path: Path) -> None:
    wits_file(tmp_path / "rig.wits")
    table = run_witskit("analyze", "quality", "rig.wits", env=clean_env(), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["source", "channel", "issue", "start", "(UTC)", "lasting", "count", "detail"]
    assert lines[2].split()[:4] == ["rig.wits", "0121", "SPPA", "spike"]
    out = tmp_path / "issues.jsonl"
    jsonl = run_witskit(
        "analyze", "quality", "rig.wits", "-f", "jsonl", "-o", str(out), env=clean_env(), cwd=tmp_path
    )
    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["kind"], r["code"], r["mnemonic"], r["count"]) for r in rows] == [
        ("gap", "", "", 5),
        ("spike", "0121", "SPPA", 1),
    ]


def test_a_stored_range_is_checked_with_its_receive_times(tmp_path: Path) -> None:
    from witskit.storage import Store

    url = f"sqlite:///{tmp_path / 'rig.db'}"
    frames = [
        frame(i, {"0121": 2000 + i % 3}, source="rig-7", received_after=900 if i >= 20 else 1)
        for i in range(60)
    ]

    async def store() -> None:
        s = await Store.open(url)
        try:
            await s.write(frames)
        finally:
            await s.aclose()

    asyncio.run(store())
    args = ["analyze", "quality", "--db", url, "--source", "rig-7", "-f", "csv"]
    proc = run_witskit(*args, env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        "rig-7,,,clock_offset,2026-01-01T06:00:20+00:00,2026-01-01T06:00:59+00:00,40,"
        "frame time behind receive time by up to 900 s"
    ]
    ranged = run_witskit(*args, "--end", "2026-01-01T06:00:20", env=clean_env(), cwd=tmp_path)
    assert ranged.stdout.splitlines()[1:] == []
    unknown = run_witskit(
        "analyze", "quality", "--db", url, "--source", "rig-8", env=clean_env(), cwd=tmp_path
    )
    assert unknown.returncode == 2
    assert "no stored frames of source 'rig-8' in that range" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "give a WITS file, or --db URL with --source NAME", id="nothing"),
        pytest.param(["--db", "sqlite:///x.db"], "--db needs --source NAME", id="no-source"),
        pytest.param(["missing.wits"], "missing.wits: no such file", id="no-file"),
        pytest.param(
            ["rig.wits", "--limit", "0121=high"], "--limit '0121=high': write CODE=LOW:HIGH", id="bad-limit"
        ),
        pytest.param(
            ["rig.wits", "--start", "2026-01-01"],
            "--start and --end select stored frames",
            id="range-of-a-file",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    wits_file(tmp_path / "rig.wits")
    proc = run_witskit("analyze", "quality", *args, env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
