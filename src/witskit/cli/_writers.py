"""Output writers of ``witskit decode``: one per ``--format``, each streaming frame by frame.

Every writer takes decoded frames one at a time, buffers a bounded amount (a batch of lines), and
writes it to the sink when the batch is full or when :meth:`flush` is called (the decode loop calls
it before each read of input, so a live feed is not held back). :meth:`close` writes what is left
(the JSON writer also closes its array there).
"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Protocol, TextIO

from witskit.protocol.decoder import text_value

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.protocol import DecodedFrame

__all__ = [
    "CSV_HEADER",
    "CsvWriter",
    "FrameWriter",
    "JsonArrayWriter",
    "JsonlWriter",
    "OutputFormat",
    "RawWriter",
    "RecordEncoder",
    "TableWriter",
    "binary_writer",
]

#: The header row of ``--format csv``: one row per point, as every WitsKit CSV (see
#: :data:`witskit.storage.formats.CSV_COLUMNS`).
CSV_HEADER = ("time", "source", "code", "mnemonic", "value", "text", "unit")

#: Frames (or rows) buffered before a write to the sink.
_BATCH = 512


class OutputFormat(StrEnum):
    """What ``decode`` writes."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    raw = "raw"


class FrameWriter(Protocol):
    """Writes decoded frames to a sink."""

    def write(self, frame: DecodedFrame) -> None:
        """Add one frame."""

    def flush(self) -> None:
        """Write what is buffered and flush the sink."""

    def close(self) -> None:
        """Write what is left (and any closing syntax); the sink stays open."""


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


def _json_encoder() -> json.JSONEncoder:
    # One encoder for the whole run: json.dumps(..., separators=...) would build one per call.
    return json.JSONEncoder(separators=(",", ":"))


class RecordEncoder:
    """Compact JSON of :meth:`DecodedFrame.to_record`, without building the record's dicts.

    The text is exactly ``json.dumps(frame.to_record(), separators=(",", ":"))`` (the tests check
    it on every kind of point), written faster: the constant parts of a point (code, mnemonic,
    unit) are built once per code, and each value and raw text is encoded on its own. One encoder
    serves one decoder (one dictionary and unit system), as in a ``decode`` run.
    """

    def __init__(self) -> None:
        self._encode = _json_encoder().encode
        self._string = json.encoder.encode_basestring_ascii
        self._parts: dict[str, tuple[str, str]] = {}

    def _code_parts(self, frame: DecodedFrame, code: str) -> tuple[str, str]:
        enc = self._encode
        head = f'{{"code":{enc(code)},"name":{enc(frame.symbol(code).name)},"value":'
        return head, f',"unit":{enc(frame.unit(code))}}}'

    def __call__(self, frame: DecodedFrame) -> str:
        enc = self._encode
        string = self._string
        parts = self._parts
        float_repr = float.__repr__
        int_repr = int.__repr__
        codes = frame.codes
        raws: list[bytes] | tuple[bytes, ...] = frame.frame.lines
        skip = 4  # a data line is its 4-digit code, then the raw value
        if len(raws) != len(codes):  # the decoder dropped bad lines: ask it which line is which
            raws = [frame.raw_value(i).encode("utf-8") for i in range(len(codes))]
            skip = 0
        # Raw text is UTF-8 with a cp1252 fallback (text_value); for ASCII, latin-1 is the same, faster.
        text_of = _latin1 if frame.frame.raw.isascii() else text_value
        points: list[str] = []
        add = points.append
        for code, v, line in zip(codes, frame.values, raws, strict=True):
            part = parts.get(code)
            if part is None:
                part = parts[code] = self._code_parts(frame, code)
            kind = type(v)
            if kind is float:
                text = float_repr(v) if v - v == 0 else enc(v)  # type: ignore[operator]
            elif kind is int:
                text = int_repr(v)
            elif v is None:
                text = "null"
            else:
                text = enc(v)
            add(f'{part[0]}{text},"raw":{string(text_of(line[skip:].strip()))}{part[1]}')
        errors = frame.errors
        headers = f',"headers":{enc(list(frame.headers))}' if frame.headers else ""
        return (
            f'{{"source":{enc(frame.source)},"timestamp":{string(frame.timestamp.isoformat())},'
            f'"points":[{",".join(points)}],"errors":{enc(errors) if errors else "[]"}{headers}}}'
        )


class JsonlWriter:
    """One JSON object per line per frame, exactly :meth:`DecodedFrame.to_record`."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self._encode = RecordEncoder()
        self._batch: list[str] = []

    def write(self, frame: DecodedFrame) -> None:
        batch = self._batch
        batch.append(self._encode(frame))
        if len(batch) >= _BATCH:
            self._drain()

    def _drain(self) -> None:
        if self._batch:
            self._batch.append("")
            self._sink.write("\n".join(self._batch).encode("utf-8"))
            self._batch.clear()

    def flush(self) -> None:
        self._drain()
        self._sink.flush()

    def close(self) -> None:
        self.flush()


class JsonArrayWriter(JsonlWriter):
    """A single JSON array of frame records, written incrementally (one frame per line)."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__(sink)
        self._count = 0
        self._sink.write(b"[")

    def write(self, frame: DecodedFrame) -> None:
        text = self._encode(frame)
        self._batch.append(("\n" if self._count == 0 else ",\n") + text)
        self._count += 1
        if len(self._batch) >= _BATCH:
            self._drain()

    def _drain(self) -> None:
        if self._batch:
            self._sink.write("".join(self._batch).encode("utf-8"))
            self._batch.clear()

    def close(self) -> None:
        self._drain()
        self._sink.write(b"\n]\n" if self._count else b"]\n")
        self._sink.flush()


class CsvWriter:
    """One row per point: ``time,source,code,mnemonic,value,text,unit`` after a header row.

    Text cells that a spreadsheet would run as a formula are neutralised (a leading ``'``).
    """

    def __init__(self, sink: IO[bytes]) -> None:
        from witskit.storage.formats import frame_csv_rows

        self._sink = sink
        self._text = io.StringIO()
        self._rows = csv.writer(self._text, lineterminator="\n")
        self._rows.writerow(CSV_HEADER)
        self._pending = 0
        self._frame_rows = frame_csv_rows
        self._labels: dict[str, tuple[str, str]] = {}  # code -> (mnemonic, unit): one decoder per run

    def write(self, frame: DecodedFrame) -> None:
        self._rows.writerows(self._frame_rows(frame, self._labels))
        self._pending += 1
        if self._pending >= _BATCH:
            self._drain()

    def _drain(self) -> None:
        text = self._text.getvalue()
        if text:
            self._sink.write(text.encode("utf-8"))
            self._text.seek(0)
            self._text.truncate()
        self._pending = 0

    def flush(self) -> None:
        self._drain()
        self._sink.flush()

    def close(self) -> None:
        self.flush()


class RawWriter:
    """The frames exactly as received, each followed by the line ending it used."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self._batch: list[bytes] = []

    def write(self, frame: DecodedFrame) -> None:
        raw = frame.frame.raw_data
        eol = "\r\n" if "\r\n" in raw else "\r" if "\r" in raw else "\n"
        self._batch.append((raw + eol).encode("latin-1", "replace"))
        if len(self._batch) >= _BATCH:
            self._drain()

    def _drain(self) -> None:
        if self._batch:
            self._sink.write(b"".join(self._batch))
            self._batch.clear()

    def flush(self) -> None:
        self._drain()
        self._sink.flush()

    def close(self) -> None:
        self.flush()


def binary_writer(fmt: OutputFormat, sink: IO[bytes]) -> FrameWriter:
    """The writer of a byte-oriented format (every format but ``table``)."""
    if fmt is OutputFormat.jsonl:
        return JsonlWriter(sink)
    if fmt is OutputFormat.json:
        return JsonArrayWriter(sink)
    if fmt is OutputFormat.csv:
        return CsvWriter(sink)
    if fmt is OutputFormat.raw:
        return RawWriter(sink)
    raise ValueError(f"{fmt.value} is not a byte-oriented format")


def _cell(value: object) -> str:
    if value is None:
        return "null"
    return str(value)


class TableWriter:
    """A rich table per frame, for reading at a terminal; after ``limit`` frames, only counts.

    Frames beyond the limit are still decoded (their problems are reported and they count in the
    summary); :attr:`hidden` says how many were not shown so the caller can say so.
    """

    def __init__(self, sink: TextIO, *, limit: int, width: int | None = None) -> None:
        from rich.console import Console

        # markup off: values and descriptions are data, and a '[' in them must print as it is.
        self._console = Console(file=sink, markup=False, highlight=False, emoji=False, width=width)
        self._sink = sink
        self._limit = limit
        self.shown = 0
        self.hidden = 0

    def write(self, frame: DecodedFrame) -> None:
        if self._limit and self.shown >= self._limit:
            self.hidden += 1
            return
        from rich import box
        from rich.table import Table

        self.shown += 1
        when = frame.timestamp.isoformat()
        head = f"Frame {self.shown} · {when} · {frame.source or '-'} · line {frame.frame.line}"
        table = Table(box=box.SIMPLE_HEAD, expand=False)
        table.add_column("Code", no_wrap=True)
        table.add_column("Mnemonic", no_wrap=True)
        table.add_column("Description")
        table.add_column("Value", justify="right", no_wrap=True)
        table.add_column("Unit", no_wrap=True)
        for code, value in zip(frame.codes, frame.values, strict=True):
            sym = frame.symbol(code)
            table.add_row(code, sym.name, sym.description, _cell(value), frame.unit(code))
        if frame.errors:
            table.caption = f"{len(frame.errors)} problem(s) in this frame (reported on stderr)"
        self._console.print(head, style="bold", soft_wrap=True)
        self._console.print(table)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self.flush()
