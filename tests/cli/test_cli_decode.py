"""``witskit decode``: every format, stdin, -o, strict mode, problems, exit statuses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_samples import BAD_FILE, GARBAGE_LINE, GOOD_1, UNKNOWN_LINE, simulated
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from witskit.cli import app
from witskit.cli._writers import RecordEncoder
from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame, iter_decode

runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.wits"
    path.write_bytes(simulated(10))
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.wits"
    path.write_bytes(BAD_FILE)
    return path


def library_records(data: bytes, source: str | None, *, metric: bool = False) -> list[dict[str, object]]:
    out = []
    for event in iter_decode(data, decoder=WITSDecoder(use_metric_units=metric), source=source):
        assert isinstance(event, DecodedFrame)
        out.append(event.to_record())
    return out


def without_receive_times(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in records]


# jsonl ------------------------------------------------------------------------------------------
def test_jsonl_is_exactly_to_record_per_frame(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    expected = library_records(sample.read_bytes(), sample.name)
    assert records == expected
    assert len(records) >= 10  # 10 record-1 frames, and any records 2 and 8 between them
    first = records[0]
    assert list(first) == ["source", "timestamp", "points", "errors"]
    assert list(first["points"][0]) == ["code", "name", "value", "raw", "unit"]
    assert first["source"] == sample.name  # its file name, as import names it
    assert first["timestamp"] == "2024-05-01T06:00:00+00:00"
    assert result.stderr == ""


def test_jsonl_lines_are_compact(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "-f", "jsonl"])
    line = result.stdout.splitlines()[0]
    assert line == json.dumps(json.loads(line), separators=(",", ":"))


def test_jsonl_keeps_per_frame_errors_and_reports_problems_with_lines(bad: Path) -> None:
    result = runner.invoke(app, ["decode", str(bad), "--format", "jsonl"])
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3  # garbage between frames is reported, not emitted as a record
    assert records[0]["errors"] == []
    assert any("unknown code 9999" in e for e in records[1]["errors"])
    assert [p["code"] for p in records[1]["points"]][3] == "9999"  # kept, with its value
    assert f"{bad}:{GARBAGE_LINE}: " in result.stderr
    assert "garbage" in result.stderr
    assert f"{bad}:{UNKNOWN_LINE}: unknown code 9999" in result.stderr
    assert "2 problem(s)" in result.stderr


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    # Items of every type (A, F, S, L), unknown and malformed codes. DATE/TIME (0105/0106) are left
    # out: they set the frame time, which is not what this property is about.
    codes = st.sampled_from(["0101", "0104", "0108", "0113", "0102", "9999", "0824", "01x8", ""])
    text = st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="&!"), max_size=12
    )
    value = st.one_of(
        text,
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**12), 10**12).map(str),
        st.sampled_from(["-9999", "-999.25", "nan", "inf", "1e400", "3.0", "", " 7 "]),
    )
    lines = draw(st.lists(st.tuples(codes, value), min_size=1, max_size=8))
    body = "\r\n".join(c + v for c, v in lines)
    return f"&&\r\n{body}\r\n!!\r\n".encode("latin-1")


@given(frames(), st.booleans(), st.sampled_from([None, 'rig "7"', "é\\x"]))
def test_fast_encoder_matches_json_dumps_of_to_record(data: bytes, metric: bool, source: str | None) -> None:
    parser = FrameParser(source=source)
    events = parser.feed(data) + parser.close()
    encode = RecordEncoder()
    decoder = WITSDecoder(use_metric_units=metric)
    for event in events:
        if isinstance(event, WITSFrame):
            frame = decoder.decode(event)
            assert encode(frame) == json.dumps(frame.to_record(), separators=(",", ":"))


# json -------------------------------------------------------------------------------------------
def test_json_is_one_array_with_every_frame_and_value(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == library_records(sample.read_bytes(), sample.name)
    points = sum(len(r["points"]) for r in data)
    lines = sample.read_bytes().count(b"\n") - 2 * len(data)  # every line but && and !!
    assert points == lines


def test_json_of_no_frames_is_an_empty_array_and_exit_1() -> None:
    result = runner.invoke(app, ["decode", "--text", "not wits", "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    assert "no WITS frames" in result.stderr


# csv --------------------------------------------------------------------------------------------
def test_csv_has_a_header_and_one_row_per_point(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--format", "csv"])
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["time", "source", "code", "mnemonic", "value", "text", "unit"]
    records = library_records(sample.read_bytes(), sample.name)
    expected = [
        [
            r["timestamp"],
            r["source"],
            p["code"],
            p["name"],
            "" if p["value"] is None or isinstance(p["value"], str) else str(p["value"]),
            p["value"] if isinstance(p["value"], str) else "",
            p["unit"],
        ]
        for r in records
        for p in r["points"]  # type: ignore[attr-defined]
    ]
    assert rows[1:] == expected


# raw --------------------------------------------------------------------------------------------
def test_raw_reemits_the_frames_as_received(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--format", "raw"])
    assert result.exit_code == 0
    assert result.stdout_bytes == sample.read_bytes()


def test_raw_drops_the_garbage_between_frames(bad: Path) -> None:
    result = runner.invoke(app, ["decode", str(bad), "--format", "raw"])
    assert b"garbage" not in result.stdout_bytes
    assert result.stdout_bytes.count(b"&&") == 3


# table ------------------------------------------------------------------------------------------
def test_table_shows_frames_and_says_when_it_caps(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--limit", "2"])
    assert result.exit_code == 0
    assert "DBTM" in result.stdout
    assert "Depth Bit (meas)" in result.stdout
    assert result.stdout.count("Frame ") == 2
    total = len(library_records(sample.read_bytes(), None))
    assert f"{total - 2} more frames not shown; use --format jsonl" in result.stderr


def test_table_limit_0_shows_everything(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--limit", "0"])
    total = len(library_records(sample.read_bytes(), None))
    assert result.stdout.count("Frame ") == total
    assert "not shown" not in result.stderr


def test_table_of_markup_like_text_prints_it_as_is() -> None:
    result = runner.invoke(app, ["decode", "--text", r"&&\n0101[bold]RIG[/]\n!!"])
    assert result.exit_code == 0
    assert "[bold]RIG[/]" in result.stdout


# inputs -----------------------------------------------------------------------------------------
def test_stdin_is_read_as_a_binary_stream(sample: Path) -> None:
    result = runner.invoke(app, ["decode", "-", "-f", "jsonl"], input=sample.read_bytes())
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records == library_records(sample.read_bytes(), None)
    assert records[0]["source"] is None


def test_source_option_names_the_frames(sample: Path) -> None:
    result = runner.invoke(
        app, ["decode", "-", "-f", "jsonl", "--source", "rig-7"], input=sample.read_bytes()
    )
    assert {json.loads(line)["source"] for line in result.stdout.splitlines()} == {"rig-7"}


def test_text_option_accepts_typed_newline_escapes() -> None:
    result = runner.invoke(app, ["decode", "--text", r"&&\n01083650.40\n011323.38\n!!", "-f", "jsonl"])
    assert result.exit_code == 0
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["code"], p["value"], p["unit"]) for p in record["points"]] == [
        ("0108", 3650.4, "F"),
        ("0113", 23.38, "F/HR"),
    ]


def test_text_option_with_real_newlines() -> None:
    result = runner.invoke(app, ["decode", "--text", "&&\n01083650.40\n!!", "-f", "csv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].endswith(",0108,DBTM,3650.4,,F")


def test_metric_labels_the_units() -> None:
    result = runner.invoke(app, ["decode", "--text", r"&&\n01083650.40\n!!", "-f", "jsonl", "--metric"])
    assert json.loads(result.stdout)["points"][0]["unit"] == "M"
    result = runner.invoke(app, ["decode", "--text", r"&&\n01083650.40\n!!", "-f", "jsonl", "--fps"])
    assert json.loads(result.stdout)["points"][0]["unit"] == "F"


def test_tz_reads_the_rig_clock_in_that_zone() -> None:
    args = ["decode", "--text", GOOD_1.decode(), "-f", "jsonl"]
    utc = json.loads(runner.invoke(app, args).stdout)["timestamp"]
    chicago = json.loads(runner.invoke(app, [*args, "--tz", "America/Chicago"]).stdout)["timestamp"]
    assert utc == "2024-05-01T12:00:00+00:00"
    assert chicago == "2024-05-01T17:00:00+00:00"  # CDT is UTC-5


def test_unknown_tz_is_a_usage_error(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--tz", "Mars/Olympus"])
    assert result.exit_code == 2
    assert "unknown time zone" in result.stderr
    assert "Traceback" not in result.output


def test_missing_path_is_an_error_not_frame_text(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wits"
    result = runner.invoke(app, ["decode", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: no such file" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_path_and_text_together_is_a_usage_error(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "--text", "&&\n01081\n!!"])
    assert result.exit_code == 2


def test_no_input_is_a_usage_error() -> None:
    result = runner.invoke(app, ["decode"])
    assert result.exit_code == 2
    assert "PATH" in result.stderr


# output -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "raw", "table"])
def test_output_file(sample: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, ["decode", str(sample), "-f", fmt, "-o", str(out)])
    assert result.exit_code == 0
    assert result.stdout == ""
    to_stdout = runner.invoke(app, ["decode", str(sample), "-f", fmt])
    if fmt == "table":
        assert "DBTM" in out.read_text(encoding="utf-8")
    else:
        assert out.read_bytes() == to_stdout.stdout_bytes


def test_output_over_the_input_is_refused(sample: Path) -> None:
    before = sample.read_bytes()
    result = runner.invoke(app, ["decode", str(sample), "-f", "jsonl", "-o", str(sample)])
    assert result.exit_code == 2
    assert sample.read_bytes() == before


def test_unwritable_output_is_a_usage_error(sample: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "-o", str(tmp_path / "no" / "such" / "dir.jsonl")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


# strict mode and exit statuses ------------------------------------------------------------------
def test_problems_without_strict_exit_0(bad: Path) -> None:
    assert runner.invoke(app, ["decode", str(bad), "-f", "jsonl"]).exit_code == 0


def test_strict_stops_at_the_first_problem_with_exit_1(bad: Path) -> None:
    result = runner.invoke(app, ["decode", str(bad), "-f", "jsonl", "--strict"])
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1  # the frame before the garbage
    assert f"{bad}:{GARBAGE_LINE}:" in result.stderr
    assert "strict" in result.stderr
    assert "unknown code" not in result.stderr  # it stopped before


def test_strict_stops_at_a_bad_data_line(tmp_path: Path) -> None:
    path = tmp_path / "unknown.wits"
    path.write_bytes(BAD_FILE.replace(b"garbage here\r\nmore garbage\r\n", b""))
    result = runner.invoke(app, ["decode", str(path), "-f", "json", "--strict"])
    assert result.exit_code == 1
    assert len(json.loads(result.stdout)) == 1  # the array is closed after the frames before it
    assert f"{path}:{UNKNOWN_LINE - 2}: unknown code 9999" in result.stderr


def test_strict_on_clean_input_exits_0(sample: Path) -> None:
    assert runner.invoke(app, ["decode", str(sample), "-f", "jsonl", "--strict"]).exit_code == 0


def test_nothing_decodable_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(b"\x00\x01 just noise \xff" * 10)
    result = runner.invoke(app, ["decode", str(path), "-f", "jsonl"])
    assert result.exit_code == 1
    assert "no WITS frames could be decoded" in result.stderr


def test_empty_input_exits_1() -> None:
    result = runner.invoke(app, ["decode", "-", "-f", "jsonl"], input=b"")
    assert result.exit_code == 1


# progress ---------------------------------------------------------------------------------------
def test_progress_bar_path_keeps_output_and_problems(monkeypatch: pytest.MonkeyPatch, bad: Path) -> None:
    from witskit.cli import _decode

    monkeypatch.setattr(_decode, "PROGRESS_THRESHOLD", 0)
    monkeypatch.setattr(_decode, "stderr_is_terminal", lambda: True)
    result = runner.invoke(app, ["decode", str(bad), "-f", "jsonl"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3
    assert f"{UNKNOWN_LINE}: unknown code 9999" in result.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(sample: Path) -> None:
    result = runner.invoke(app, ["decode", str(sample), "-f", "jsonl"])
    assert result.stderr == ""


# speed ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_jsonl_of_20000_frames_is_fast(tmp_path: Path) -> None:
    import time

    path = tmp_path / "big.wits"
    path.write_bytes(simulated(20_000, records=(1,)))
    out = tmp_path / "big.jsonl"
    start = time.perf_counter()
    result = runner.invoke(app, ["decode", str(path), "-f", "jsonl", "-o", str(out)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0
    with out.open("rb") as fh:
        assert sum(1 for _ in fh) == 20_000
    assert elapsed < 5.0
