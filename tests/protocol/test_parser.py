"""FrameParser: every case runs whole, one byte at a time, and with trailing garbage."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from witskit.errors import FrameError, UsageError
from witskit.protocol import FrameParser, WITSFrame
from witskit.protocol.limits import DEFAULT_MAX_LINE_LENGTH

Event = tuple[str, object, int]


def summarize(events: list[WITSFrame | FrameError]) -> list[Event]:
    """Frames as ('frame', lines, offset), errors as (kind, None, offset)."""
    out: list[Event] = []
    for e in events:
        if isinstance(e, WITSFrame):
            out.append(("frame", e.lines, e.offset))
        else:
            assert isinstance(e, FrameError)
            out.append((e.kind, None, e.offset))
    return out


def parse_whole(data: bytes, **kw: int) -> list[WITSFrame | FrameError]:
    p = FrameParser(source="t", **kw)
    return p.feed(data) + p.close()


def parse_bytewise(data: bytes, **kw: int) -> list[WITSFrame | FrameError]:
    p = FrameParser(source="t", **kw)
    events: list[WITSFrame | FrameError] = []
    for i in range(len(data)):
        events += p.feed(data[i : i + 1])
    return events + p.close()


def three_ways(data: bytes, **kw: int) -> list[Event]:
    """Parse whole and byte by byte (must agree), and with trailing garbage (one more error)."""
    whole = summarize(parse_whole(data, **kw))
    assert summarize(parse_bytewise(data, **kw)) == whole
    garbage = b"\r\n#garbage#"
    tail = summarize(parse_whole(data + garbage, **kw))
    assert tail[: len(whole)] == whole
    assert [k for k, _, _ in tail[len(whole) :]] in (["garbage"], ["truncated"])
    return whole


FRAME = b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n"
FRAME_LINES = (b"01083650.40", b"011323.38")


def test_single_frame_crlf() -> None:
    assert three_ways(FRAME) == [("frame", (b"01083650.40", b"011323.38"), 0)]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
def test_line_endings(eol: bytes) -> None:
    data = eol.join([b"&&", b"01083650.40", b"011323.38", b"!!", b""])
    assert three_ways(data) == [("frame", (b"01083650.40", b"011323.38"), 0)]


def test_whitespace_and_blank_lines_are_ignored() -> None:
    data = b"  &&  \r\n\r\n   01083650.40 \t\r\n\n\n011323.38\r\n   !!\r\n\r\n"
    assert three_ways(data) == [("frame", (b"01083650.40", b"011323.38"), 2)]


def test_value_with_inner_spaces_is_kept() -> None:
    data = b"&&\n0101WELL A 12\n!!\n"
    assert three_ways(data) == [("frame", (b"0101WELL A 12",), 0)]


def test_garbage_before_a_frame_is_one_error_then_resync() -> None:
    data = b"noise noise\r\nmore noise\r\n" + FRAME
    events = three_ways(data)
    assert [k for k, _, _ in events] == ["garbage", "frame"]
    assert events[0][2] == 0
    assert events[1][2] == data.index(b"&&")


def test_stray_end_marker_is_garbage_not_an_empty_frame() -> None:
    events = parse_whole(b"!!\r\n" + FRAME)
    assert isinstance(events[0], FrameError)
    assert "'!!' outside a frame" in events[0].reason
    assert summarize(events)[1] == ("frame", (b"01083650.40", b"011323.38"), 4)
    assert [k for k, _, _ in three_ways(b"!!\r\n" + FRAME)] == ["garbage", "frame"]


def test_frame_cut_short_by_new_start() -> None:
    data = b"&&\r\n01081.0\r\n&&\r\n01082.0\r\n!!\r\n"
    events = three_ways(data)
    assert events == [("cut", None, 0), ("frame", (b"01082.0",), 13)]


def test_data_after_start_marker_on_same_line_is_kept() -> None:
    assert three_ways(b"&&01081.5\r\n01132.5\r\n!!\r\n") == [("frame", (b"01081.5", b"01132.5"), 0)]


def test_data_before_end_marker_on_same_line_is_kept() -> None:
    assert three_ways(b"&&\r\n01081.5\r\n01132.5!!\r\n") == [("frame", (b"01081.5", b"01132.5"), 0)]


def test_empty_frame_is_an_error() -> None:
    assert three_ways(b"&&\r\n\r\n!!\r\n" + FRAME) == [
        ("empty", None, 0),
        ("frame", (b"01083650.40", b"011323.38"), 10),
    ]


def test_pason_header_line_stays_in_the_frame() -> None:
    data = b"&&\r\n1984PASON/EDR\r\n01083650.40\r\n!!\r\n"
    assert three_ways(data) == [("frame", (b"1984PASON/EDR", b"01083650.40"), 0)]


def test_many_frames_in_one_chunk_keep_order_and_offsets() -> None:
    data = FRAME * 50
    events = three_ways(data)
    assert len(events) == 50
    assert [off for _, _, off in events] == [i * len(FRAME) for i in range(50)]


def test_truncated_frame_at_close() -> None:
    events = parse_whole(FRAME + b"&&\r\n01081.0\r\n")
    assert isinstance(events[-1], FrameError)
    assert events[-1].kind == "truncated"
    assert events[-1].offset == len(FRAME)


def test_error_says_what_where_source_offset_and_excerpt() -> None:
    data = b"&&\r\n01081\r\n!!\r\nBAD BYTES HERE\r\n" + FRAME
    err = next(e for e in parse_whole(data) if isinstance(e, FrameError))
    assert err.source == "t"
    assert err.offset == data.index(b"BAD")
    assert err.line == 4
    assert err.excerpt == b"BAD BYTES HERE"
    assert "garbage" in err.message
    assert "line 4" in err.message
    assert f"byte offset {err.offset}" in err.message
    assert "'t'" in err.message


def test_line_numbers_of_frames() -> None:
    data = b"\n\n" + FRAME + b"\n" + FRAME
    frames = [e for e in parse_bytewise(data) if isinstance(e, WITSFrame)]
    assert [f.line for f in frames] == [3, 8]
    assert [f.sequence for f in frames] == [0, 1]


def test_line_too_long_is_reported_and_the_rest_of_its_frame_is_kept() -> None:
    long_line = b"0101" + b"x" * 200
    data = b"&&\r\n01081.5\r\n" + long_line + b"\r\n01132.5\r\n!!\r\n" + FRAME
    events = three_ways(data, max_line_length=100)
    assert events == [
        ("line", None, data.index(long_line)),
        ("frame", (b"01081.5", b"01132.5"), 0),
        ("frame", FRAME_LINES, data.index(FRAME)),
    ]


def test_line_too_long_error_names_the_line_and_quotes_its_start() -> None:
    long_line = b"0101" + b"y" * 5000
    data = FRAME + b"&&\r\n01081.5\r\n" + long_line + b"\r\n!!\r\n" + FRAME
    for events in (parse_whole(data, max_line_length=100), parse_bytewise(data, max_line_length=100)):
        err, kept = events[1], events[2]
        assert isinstance(err, FrameError)
        assert err.kind == "line"
        assert err.line == 7  # the input line of the long line
        assert err.offset == data.index(long_line)
        assert err.excerpt == long_line[:48]
        assert "max_line_length=100" in err.message
        assert isinstance(kept, WITSFrame)
        assert kept.lines == (b"01081.5",)
        assert (kept.offset, kept.line) == (len(FRAME), 5)
        last = events[3]
        assert isinstance(last, WITSFrame)
        assert (last.offset, last.line) == (data.rindex(FRAME), 9)  # offsets after the cut still true


@pytest.mark.parametrize(
    "body",
    [
        b"&&" + b"9" * 300 + b"\r\n01081.5\r\n!!\r\n",  # on the '&&' line
        b"&&\r\n01081.5\r\n" + b"9" * 300 + b"!!\r\n",  # before '!!' on its line
        b"&&\r\n01081.5\r" + b"9" * 300 + b"\r01132\r!!\r",  # CR-only line ends
        b"&&\n01081.5\n" + b"9" * 300 + b"\n" + b"8" * 300 + b"\n!!\n",  # two in one frame
    ],
    ids=["start-line", "end-line", "cr-only", "two-long-lines"],
)
def test_line_too_long_anywhere_in_a_frame(body: bytes) -> None:
    events = three_ways(body + FRAME, max_line_length=100)
    kinds = [k for k, _, _ in events]
    assert kinds[-1] == "frame"
    assert kinds[:-2] == ["line"] * body.count(b"9" * 300) + ["line"] * body.count(b"8" * 300)
    assert events[-2][0] == "frame"
    assert b"01081.5" in events[-2][1]  # type: ignore[operator]


def test_frame_of_only_a_long_line_is_empty_after_it() -> None:
    data = b"&&\r\n" + b"0101" + b"x" * 200 + b"\r\n!!\r\n" + FRAME
    assert [k for k, _, _ in three_ways(data, max_line_length=100)] == ["line", "empty", "frame"]


def test_long_line_in_a_frame_cut_short_is_reported_before_the_cut() -> None:
    data = b"&&\r\n01081\r\n" + b"7" * 300 + FRAME
    assert [k for k, _, _ in three_ways(data, max_line_length=100)] == ["line", "cut", "frame"]


def test_a_huge_line_is_skipped_without_buffering_it() -> None:
    p = FrameParser(max_line_length=1000)
    events = p.feed(b"&&\r\n01081.5\r\n0101")
    for _ in range(2500):  # 10 MB of one line, 4 KiB at a time
        events += p.feed(b"z" * 4096)
        assert len(p._buf) <= 1000 + 4096 + 64  # never more than the limit and one read
    events += p.feed(b"\r\n01132.5\r\n!!\r\n" + FRAME) + p.close()
    assert [type(e).__name__ for e in events] == ["FrameError", "WITSFrame", "WITSFrame"]
    frame = events[1]
    assert isinstance(frame, WITSFrame)
    assert frame.lines == (b"01081.5", b"01132.5")
    last = events[2]
    assert isinstance(last, WITSFrame)
    assert last.offset == p.offset - len(FRAME)


def test_too_many_lines_is_an_error() -> None:
    data = b"&&\r\n" + b"01081.0\r\n" * 11 + b"!!\r\n" + FRAME
    events = three_ways(data, max_lines_per_frame=10)
    assert [k for k, _, _ in events] == ["limit", "frame"]


def test_oversized_frame_without_end_is_dropped_with_bounded_memory() -> None:
    p = FrameParser(max_frame_bytes=1000)
    events: list[WITSFrame | FrameError] = []
    events += p.feed(b"&&\r\n")
    for _ in range(100):
        events += p.feed(b"0108" + b"9" * 96 + b"\r\n")
        assert len(p._buf) <= 1200  # never buffers more than the limit
    events += p.feed(b"!!\r\n" + FRAME)
    events += p.close()
    assert [k for k, _, _ in summarize(events)] == ["limit", "frame"]


def test_complete_frame_over_size_limit_is_an_error() -> None:
    big = b"&&\r\n" + b"01081.0\r\n" * 200 + b"!!\r\n"
    events = parse_whole(big + FRAME, max_frame_bytes=500)
    assert [k for k, _, _ in summarize(events)] == ["limit", "frame"]


def test_garbage_is_reported_every_max_garbage_bytes_without_buffering() -> None:
    p = FrameParser(max_garbage_bytes=1000)
    events: list[WITSFrame | FrameError] = []
    for _ in range(100):
        events += p.feed(b"z" * 100)
        assert len(p._buf) <= 1
    assert len(events) == 10
    assert all(isinstance(e, FrameError) and e.kind == "garbage" for e in events)
    events = p.feed(FRAME) + p.close()
    assert isinstance(events[-1], WITSFrame)


def test_trailing_ampersand_across_feeds_still_starts_a_frame() -> None:
    p = FrameParser()
    assert p.feed(b"xx&") == []
    events = p.feed(b"&\r\n01081\r\n!!") + p.close()
    assert [type(e).__name__ for e in events] == ["FrameError", "WITSFrame"]
    assert events[0].excerpt == b"xx"


def test_binary_garbage_between_frames() -> None:
    data = FRAME + bytes(range(256)).replace(b"&", b"").replace(b"!", b"") + FRAME
    events = three_ways(data)
    assert [k for k, _, _ in events] == ["frame", "garbage", "frame"]


def test_feed_after_close_is_a_usage_error() -> None:
    p = FrameParser()
    p.close()
    with pytest.raises(UsageError):
        p.feed(FRAME)


def test_bad_limit_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="max_line_length"):
        FrameParser(max_line_length=0)


def test_default_limits_are_named_constants() -> None:
    assert FrameParser().max_line_length == DEFAULT_MAX_LINE_LENGTH


def test_long_trickled_stream_is_linear_and_complete() -> None:
    # 2 MB, one byte at a time: correct output here; the timing ratio lives in bench/.
    data = FRAME * (2_000_000 // len(FRAME))
    p = FrameParser()
    count = 0
    for i in range(len(data)):
        count += len(p.feed(data[i : i + 1]))
    assert count == len(data) // len(FRAME)
    assert p.close() == []


def test_frame_timestamps_are_utc_aware() -> None:
    (frame,) = parse_whole(FRAME)
    assert isinstance(frame, WITSFrame)
    assert frame.timestamp.utcoffset() is not None
    assert frame.timestamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


# Properties ----------------------------------------------------------------------------------
wits_like = st.lists(
    st.one_of(
        st.sampled_from([b"&&", b"!!", b"\r\n", b"\n", b"\r", b" ", b"0108", b"1.5", b"-9999", b"&", b"!"]),
        st.binary(max_size=12),
    ),
    max_size=60,
).map(b"".join)


@given(data=st.one_of(st.binary(max_size=400), wits_like), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_any_bytes_give_only_frames_and_frame_errors_in_any_chunking(data: bytes, cuts: list[int]) -> None:
    whole = parse_whole(data)
    assert all(isinstance(e, WITSFrame | FrameError) for e in whole)
    for e in whole:
        if isinstance(e, WITSFrame):
            assert e.lines
            assert all(ln and ln == ln.strip() for ln in e.lines)
    # Same events whatever the chunking.
    p = FrameParser(source="t")
    chunked: list[WITSFrame | FrameError] = []
    prev = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        chunked += p.feed(data[prev:cut])
        prev = cut
    chunked += p.feed(data[prev:]) + p.close()
    assert summarize(chunked) == summarize(whole)


@given(data=wits_like, cuts=st.lists(st.integers(0, 400), max_size=8), limit=st.integers(1, 12))
def test_line_limit_gives_the_same_events_in_any_chunking(data: bytes, cuts: list[int], limit: int) -> None:
    whole = parse_whole(data, max_line_length=limit)
    p = FrameParser(source="t", max_line_length=limit)
    chunked: list[WITSFrame | FrameError] = []
    prev = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        chunked += p.feed(data[prev:cut])
        prev = cut
    chunked += p.feed(data[prev:]) + p.close()

    def key(e: WITSFrame | FrameError) -> tuple[object, ...]:
        return (e.lines, e.offset, e.line) if isinstance(e, WITSFrame) else (e.kind, e.offset)

    assert [key(e) for e in chunked] == [key(e) for e in whole]
    assert [e for e in chunked if isinstance(e, FrameError) and e.kind == "line"] == [
        e for e in whole if isinstance(e, FrameError) and e.kind == "line"
    ]
    for e in whole:
        if isinstance(e, WITSFrame):
            assert all(len(ln) <= limit for ln in e.lines)


@given(st.lists(st.lists(st.from_regex(rb"\A[0-9]{4}[0-9.\-]{1,8}\Z"), min_size=1, max_size=5), max_size=8))
def test_well_formed_frames_all_come_back(frames: list[list[bytes]]) -> None:
    data = b"".join(b"&&\r\n" + b"\r\n".join(lines) + b"\r\n!!\r\n" for lines in frames)
    events = parse_bytewise(data)
    assert [e.lines for e in events if isinstance(e, WITSFrame)] == [tuple(f) for f in frames]
    assert not [e for e in events if isinstance(e, FrameError)]


# Byte-order mark -----------------------------------------------------------------------------
BOM = b"\xef\xbb\xbf"


def test_utf8_bom_at_the_start_is_skipped_silently() -> None:
    assert three_ways(BOM + FRAME) == [("frame", (b"01083650.40", b"011323.38"), 3)]


def test_utf8_bom_before_blank_lines_and_two_frames() -> None:
    events = three_ways(BOM + b"\r\n" + FRAME + FRAME)
    assert [k for k, _, _ in events] == ["frame", "frame"]


def test_utf8_bom_in_the_middle_of_a_stream_is_garbage() -> None:
    events = three_ways(FRAME + BOM + FRAME)
    assert [k for k, _, _ in events] == ["frame", "garbage", "frame"]


@pytest.mark.parametrize("prefix", [BOM[:1], BOM[:2]], ids=["one-byte", "two-bytes"])
def test_a_stream_of_only_part_of_a_bom_is_garbage(prefix: bytes) -> None:
    # Alone it is one garbage run however it is fed (trailing garbage would join that run).
    assert summarize(parse_whole(prefix)) == summarize(parse_bytewise(prefix)) == [("garbage", None, 0)]
    assert [k for k, _, _ in three_ways(prefix + FRAME)] == ["garbage", "frame"]


# Receive times ---------------------------------------------------------------------------------
def test_receive_times_strictly_increase_in_stream_order() -> None:
    from datetime import UTC, datetime

    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    p = FrameParser(clock=lambda: fixed)  # a clock that never moves (or moves in coarse steps)
    frames = p.feed(FRAME * 5) + p.feed(FRAME) + p.feed(FRAME[:5]) + p.feed(FRAME[5:] + FRAME)
    times = [f.timestamp for f in frames if isinstance(f, WITSFrame)]
    assert len(times) == 8
    assert times[0] == fixed
    assert all(a < b for a, b in itertools.pairwise(times))
