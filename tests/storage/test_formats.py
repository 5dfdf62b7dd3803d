"""The fast export text is exactly what the csv and json modules write for the same points."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from witskit.storage.formats import PointText, csv_field, csv_safe
from witskit.storage.query import RawPoint, integer_codes, stored_value
from witskit.storage.schema import from_micros
from witskit.symbols import default_table

NAMES = {1: "rig-7", 2: 'yard, "north"\nbay', 3: "Ærø-Δ"}
CODES = ["0108", "0120", "0101", "0117", "9999", "0105"]  # float, integer, text, float, unknown, integer

times = st.integers(min_value=0, max_value=4_102_444_800_000_000)  # 1970..2100
nums = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**40), 2**40).map(float)
)
texts = st.one_of(st.none(), st.text(max_size=12))


@st.composite
def raw_points(draw: st.DrawFn) -> RawPoint:
    txt = draw(texts)
    return (
        draw(st.sampled_from([*sorted(NAMES), 9])),
        draw(times),
        draw(st.sampled_from(CODES)),
        None if txt is not None else draw(nums),
        txt,
        draw(st.integers(-(2**63), 2**63 - 1)),
        draw(st.integers(0, 300)),
    )


def reference_rows(rows: list[RawPoint], *, source_first: bool) -> list[tuple[str, ...]]:
    ints = integer_codes()
    table = default_table()
    out = []
    for sid, us, code, num, txt, _, _ in rows:
        sym = table.get(code)
        name = sym.name if sym is not None else f"U{code}"
        value = stored_value(code, num, txt, ints)
        stamp, source = from_micros(us).isoformat(), NAMES.get(sid, f"#{sid}")
        first = (source, stamp) if source_first else (stamp, source)
        out.append((*first, code, name, value))  # type: ignore[arg-type]
    return out


def csv_reference_rows(rows: list[RawPoint], *, metric: bool = False) -> list[tuple[object, ...]]:
    """The CSV_COLUMNS rows of ``rows``, built with the plainest code."""
    ints = integer_codes()
    table = default_table()
    out: list[tuple[object, ...]] = []
    for sid, us, code, num, txt, _, _ in rows:
        sym = table.get(code)
        name = sym.name if sym is not None else f"U{code}"
        unit = sym.unit(metric) if sym is not None else ""
        value = stored_value(code, num, txt, ints)
        number = "" if value is None or isinstance(value, str) else value
        text = value if isinstance(value, str) else ""
        source = NAMES.get(sid, f"#{sid}")
        out.append(
            (
                from_micros(us).isoformat(),
                csv_safe(source),
                code,
                csv_safe(name),
                number,
                csv_safe(text),
                csv_safe(unit),
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_points(), max_size=40), st.booleans(), st.booleans())
def test_csv_is_what_the_csv_module_writes(rows: list[RawPoint], source_first: bool, metric: bool) -> None:
    fields = csv_reference_rows(rows, metric=metric)
    # One CSV layout whatever source_first (which orders JSON Lines keys only).
    text = PointText(NAMES, source_first=source_first, metric=metric).csv(rows)
    # Every field reads back as written.
    assert list(csv.reader(io.StringIO(text, newline=""))) == [[str(f) for f in row] for row in fields]
    if "\r" not in text:
        # Byte for byte what the csv module writes. (Python 3.11's writer leaves a lone carriage
        # return unquoted, which its own reader then splits the row at; PointText quotes it.)
        expected = io.StringIO()
        csv.writer(expected, lineterminator="\n").writerows(fields)
        assert text == expected.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_points(), max_size=40), st.booleans())
def test_json_lines_are_what_json_dumps_writes(rows: list[RawPoint], source_first: bool) -> None:
    keys = ("source", "time") if source_first else ("time", "source")
    expected = [
        json.dumps(dict(zip((*keys, "code", "name", "value"), r, strict=True)), separators=(",", ":"))
        for r in reference_rows(rows, source_first=source_first)
    ]
    assert PointText(NAMES, source_first=source_first).jsonl(rows) == expected


def test_integer_items_read_back_as_ints_and_others_as_floats() -> None:
    fmt = PointText({1: "r"})
    t = 1_767_247_200_000_000
    text = fmt.csv(
        [(1, t, "0120", 7.0, None, 1, 0), (1, t, "0108", 7.0, None, 1, 1), (1, t, "0108", None, None, 1, 2)]
    )
    assert [line.split(",")[4] for line in text.splitlines()] == ["7", "7.0", ""]
    assert default_table()["0120"].data_type.is_integer


def test_csv_field_quotes_only_what_needs_it() -> None:
    assert csv_field("plain text") == "plain text"
    assert csv_field("a,b") == '"a,b"'
    assert csv_field('say "hi"') == '"say ""hi"""'
    assert csv_field("two\nlines") == '"two\nlines"'


@pytest.mark.parametrize(
    "text",
    [
        "=HYPERLINK(1)",
        "@SUM(1)",
        "-1+1",
        "\t=1+1",
        " =1+1",  # a spreadsheet that trims spaces on import runs it
        "\n=1+1",
        "\xa0=1+1",  # UTF-8 text items keep a no-break space (the parser strips ASCII only)
        "\u3000=1+1",  # ideographic space
        "\uff1d1+1",  # full-width =
        "\uff0b1+1",  # full-width +
        "\uff0dcmd|x",  # full-width -
        "\uff20SUM(1)",  # full-width @
        "\ufe66cmd",  # small =
        "-inf",  # float() reads it; a spreadsheet reads a formula (a name)
        "+nan",
        "-1_000",
    ],
)
def test_csv_safe_neutralises_every_formula_start(text: str) -> None:
    assert csv_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["-12.5", "+3", "-1e5", ".5", "----", "rig-7", "", " rig", "1=1"])
def test_csv_safe_leaves_numbers_and_plain_text(text: str) -> None:
    assert csv_safe(text) == text
