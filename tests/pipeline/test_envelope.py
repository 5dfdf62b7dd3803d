"""The fleet's messages: a frame alone (version 1) and a bundle of one rig's frames (version 2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from witskit.pipeline.envelope import (
    EnvelopeError,
    decode_envelope,
    decode_message,
    encode_bundle,
    encode_envelope,
)
from witskit.pipeline.jetstream import batch_messages
from witskit.pipeline.records import pack_frame
from witskit.protocol import FrameParser, WITSDecoder, WITSFrame


def _frame(n: int, source: str = "rig-1") -> WITSFrame:
    parser = FrameParser(source=source)
    (frame,) = [
        e for e in parser.feed(b"&&\r\n0104%d\r\n0108%d.5\r\n!!\r\n" % (n, n)) if isinstance(e, WITSFrame)
    ]
    return frame


def _records(numbers: list[int]) -> list[tuple[int, bytes]]:
    return [(n * 3, pack_frame(_frame(n))) for n in numbers]


@settings(max_examples=50, deadline=None)
@given(numbers=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40))
def test_a_bundle_gives_back_its_frames_in_order(numbers: list[int]) -> None:
    headers, body = encode_bundle(_records(numbers), edge="site-a")
    envelopes, bad = decode_message(headers, body)
    assert not bad
    assert [e.sequence for e in envelopes] == [n * 3 for n in numbers]
    assert [e.frame.raw for e in envelopes] == [_frame(n).raw for n in numbers]
    assert {e.edge for e in envelopes} == {"site-a"}
    assert headers["WitsKit-Frames"] == str(len(numbers))


def test_a_bundle_id_is_its_content() -> None:
    """The same records make the same id (a retry is dropped by the stream); other records, or
    the same ones cut otherwise, another."""
    records = _records([1, 2, 3])
    one = encode_bundle(records, edge="e")[0]["Nats-Msg-Id"]
    assert one == encode_bundle(list(records), edge="e")[0]["Nats-Msg-Id"]
    assert one.startswith("e:3-9:3:")
    assert one != encode_bundle(records[:2], edge="e")[0]["Nats-Msg-Id"]
    assert one != encode_bundle(records, edge="f")[0]["Nats-Msg-Id"]
    single = encode_envelope(_frame(1), edge="e", sequence=3)[0]["Nats-Msg-Id"]
    assert single.startswith("e:3:")
    assert single != one


def test_a_single_frame_reads_as_before() -> None:
    headers, body = encode_envelope(_frame(7), edge="e", sequence=11)
    (envelope,), bad = decode_message(headers, body)
    assert not bad
    assert envelope.sequence == 11
    assert envelope == decode_envelope(headers, body)
    with pytest.raises(EnvelopeError, match="a bundle"):
        decode_envelope(*encode_bundle(_records([1, 2]), edge="e"))


def test_a_bad_record_is_named_and_the_others_kept() -> None:
    good = _records([1, 2])
    headers, body = encode_bundle([good[0], (99, good[1][1][:11] + b"no frame"), good[1]], edge="e")
    envelopes, bad = decode_message(headers, body)
    assert [e.sequence for e in envelopes] == [3, 6]
    assert [(b.kind, "spool record 99" in str(b)) for b in bad] == [("not-a-frame", True)]


@pytest.mark.parametrize(
    ("change", "kind", "said"),
    [
        (lambda h, b: (h, b[:-1]), "truncated", "record 2 (spool record 6) runs past the body's end"),
        (lambda h, b: (h, b[:5]), "truncated", "record 1 is cut in its head"),
        (
            lambda h, b: ({**h, "WitsKit-Frames": "3"}, b),
            "header",
            "2 records where WitsKit-Frames says 3",
        ),
        (lambda h, b: ({**h, "WitsKit-Frames": "x"}, b), "header", "WitsKit-Frames missing or malformed"),
        (
            lambda h, b: ({**h, "WitsKit-Frames": "9" * 30}, b),
            "header",
            "WitsKit-Frames missing or malformed",
        ),
        (lambda h, b: ({**h, "WitsKit-Frames": "0"}, b""), "header", "0 records"),
        (
            lambda h, b: ({**h, "WitsKit-Frames": "1"}, b),
            "header",
            "more records where WitsKit-Frames says 1",
        ),
        (lambda h, b: ({**h, "WitsKit-Frames": "1025"}, b), "too-large", "1025 frames, more than the 1024"),
        (lambda h, b: ({**h, "WitsKit-Envelope": "3"}, b), "version", "this WitsKit reads 1 and 2"),
        (lambda h, b: ({}, b), "foreign", "no WitsKit-Envelope header"),
    ],
)
def test_a_broken_bundle_is_refused_whole(change, kind: str, said: str) -> None:  # type: ignore[no-untyped-def]
    headers, body = change(*encode_bundle(_records([1, 2]), edge="e"))
    with pytest.raises(EnvelopeError, match=re.escape(said)) as caught:
        decode_message(headers, body)
    assert caught.value.kind == kind


def test_a_batch_is_cut_into_one_message_per_rig() -> None:
    """A rig's single frame goes alone (version 1); a rig's several frames in one bundle, in receive
    order, whatever the other rigs' frames between them."""
    decode = WITSDecoder().decode
    batch = [decode(_frame(n, f"rig-{n % 3}")) for n in range(1, 8)] + [decode(_frame(100, "solo"))]
    messages = list(batch_messages(batch, list(range(101, 109)), edge="e"))
    assert [(source, count, h["WitsKit-Envelope"]) for source, h, _, count in messages] == [
        ("rig-1", 3, "2"),
        ("rig-2", 2, "2"),
        ("rig-0", 2, "2"),
        ("solo", 1, "1"),
    ]
    rig1 = decode_message(messages[0][1], messages[0][2])[0]
    assert [(e.sequence, e.frame.raw) for e in rig1] == [
        (101, _frame(1).raw),
        (104, _frame(4).raw),
        (107, _frame(7).raw),
    ]
    assert messages == list(batch_messages(batch, list(range(101, 109)), edge="e"))  # a retry: the same


def test_a_long_run_of_one_rig_is_cut_into_bounded_bundles() -> None:
    decode = WITSDecoder().decode
    batch = [decode(_frame(n)) for n in range(600)]
    messages = list(batch_messages(batch, list(range(1, 601)), edge="e"))
    assert [count for *_, count in messages] == [256, 256, 88]
    frames = [e.frame.raw for _, h, b, _ in messages for e in decode_message(h, b)[0]]
    assert frames == [f.frame.raw for f in batch]
