"""The durable spool: append, replay in order, ack, restart, bounds, torn tails and corruption.

Everything runs on real files in tmp_path. Byte-level tests rely on the documented record layout
(docs/spool.md): a 24-byte header ``magic(4) crc32(4) version(2) flags(2) length(4) seq(8)``, then
the payload; the CRC covers the header from ``version`` on, then the payload.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from witskit.errors import UsageError, WitsKitError
from witskit.storage.spool import (
    RECORD_HEADER_SIZE,
    Spool,
    SpoolCorruptError,
    SpoolError,
    SpoolFullError,
)

HEADER = struct.Struct("<4sIHHIQ")
FIELDS = struct.Struct("<HHIQ")
MAGIC = b"\xf7SPL"


def payload(i: int) -> bytes:
    return b"&&\r\n0108%d\r\n!!\r\n" % i * (1 + i % 5)


def open_spool(directory: Path, **kw: object) -> Spool:
    kw.setdefault("fsync", "never")
    return Spool(directory, **kw)  # type: ignore[arg-type]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def records(path: Path) -> list[tuple[int, int, int]]:
    """(offset, seq, total size) of each record of a well-formed segment."""
    data = path.read_bytes()
    out = []
    off = 0
    while off < len(data):
        magic, _crc, _v, _f, length, seq = HEADER.unpack_from(data, off)
        assert magic == MAGIC
        out.append((off, seq, RECORD_HEADER_SIZE + length))
        off += RECORD_HEADER_SIZE + length
    return out


def is_full(spool: Spool) -> bool:
    return spool.is_full  # (a call, so that mypy does not narrow the property across appends)


def encode(seq: int, body: bytes, version: int = 1) -> bytes:
    fields = FIELDS.pack(version, 0, len(body), seq)
    return MAGIC + struct.pack("<I", zlib.crc32(body, zlib.crc32(fields))) + fields + body


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def d(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# --- basics ---------------------------------------------------------------------------------------


def test_append_returns_sequence_numbers_and_pending_replays_in_order(d: Path) -> None:
    with open_spool(d) as spool:
        assert spool.last_seq == 0
        assert spool.append(payload(1)) == 1
        assert spool.append_many([payload(2), payload(3), b""]) == [2, 3, 4]
        assert spool.append_many([]) == []
        assert list(spool.pending()) == [(1, payload(1)), (2, payload(2)), (3, payload(3)), (4, b"")]
        assert spool.last_seq == 4
        assert spool.acked_seq == 0
        assert spool.pending_count == 4
        assert (
            spool.pending_bytes
            == spool.size_bytes
            == sum(RECORD_HEADER_SIZE + len(p) for p in (payload(1), payload(2), payload(3)))
            + RECORD_HEADER_SIZE
        )
        assert segments(d) == [d / "0000000000000001.wal"]


def test_payloads_may_be_bytearray_or_memoryview(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append(bytearray(b"ab"))  # type: ignore[arg-type]
        spool.append(memoryview(b"cd"))  # type: ignore[arg-type]
        assert list(spool.pending()) == [(1, b"ab"), (2, b"cd")]


def test_records_survive_a_restart_and_sequence_numbers_continue(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 6)])
    with open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == [1, 2, 3, 4, 5]
        assert spool.append(payload(6)) == 6
        spool.ack(6)  # everything acked: every segment is deleted
        assert segments(d) == []
        assert spool.pending_count == 0
        assert spool.size_bytes == 0
    with open_spool(d) as spool:
        assert spool.last_seq == spool.acked_seq == 6  # from the ack file alone
        assert spool.append(payload(7)) == 7
        assert segments(d) == [d / "0000000000000007.wal"]
    with open_spool(d) as spool:
        assert list(spool.pending()) == [(7, payload(7))]


def test_reading_twice_without_ack_yields_the_same_records(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append_many([payload(i) for i in range(40)])
        first = list(spool.pending())
        assert first == list(spool.pending())
        assert [s for s, _ in first] == list(range(1, 41))
        spool.ack(10)
        assert list(spool.pending()) == first[10:]
        assert list(spool.pending()) == first[10:]


def test_pending_after_and_limit(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append_many([payload(i) for i in range(1, 51)])
        spool.ack(5)

        def seqs(**kw: int | None) -> list[int]:
            return [s for s, _ in spool.pending(**kw)]

        assert seqs() == list(range(6, 51))
        assert seqs(after=0) == list(range(6, 51))  # acked records never come back
        assert seqs(after=5) == list(range(6, 51))
        assert seqs(after=20) == list(range(21, 51))
        assert seqs(after=20, limit=3) == [21, 22, 23]
        assert seqs(after=49) == [50]
        assert seqs(after=50) == []
        assert seqs(after=1000) == []
        assert seqs(limit=0) == []
        assert seqs(limit=2) == [6, 7]
        # A replay loop: each call picks up after the last record it saw.
        seen: list[int] = []
        after = 0
        while batch := seqs(after=after, limit=7):
            seen += batch
            after = batch[-1]
        assert seen == list(range(6, 51))
        with pytest.raises(UsageError, match="after"):
            seqs(after=-1)
        with pytest.raises(UsageError, match="limit"):
            seqs(limit=-1)


def test_pending_is_a_snapshot_taken_when_called(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([b"a", b"b"])
        it = spool.pending()
        spool.append(b"c")
        assert [s for s, _ in it] == [1, 2]
        assert [s for s, _ in spool.pending()] == [1, 2, 3]


def test_ack_while_iterating_is_safe(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append_many([payload(i) for i in range(1, 61)])
        got = []
        for seq, body in spool.pending():
            got.append((seq, body))
            spool.ack(seq)  # deletes segments under the reader's feet
        assert [s for s, _ in got] == list(range(1, 61))
        assert all(body == payload(s) for s, body in got)
        assert segments(d) == []


def test_segments_rotate_and_acked_ones_are_deleted(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        for i in range(1, 101):
            spool.append(payload(i))
        files = segments(d)
        assert len(files) == spool.segment_count > 5
        # Each file is named by the sequence number of its first record, and each stays within
        # segment_bytes (single appends never exceed it).
        for f in files:
            recs = records(f)
            assert int(f.stem) == recs[0][1]
            assert f.stat().st_size <= 1024
        firsts = [int(f.stem) for f in files]
        spool.ack(firsts[3])  # inside the 4th segment: the first three go
        assert segments(d) == files[3:]
        assert spool.pending_count == 100 - firsts[3]
        assert spool.size_bytes - spool.pending_bytes == sum(
            r[2] for r in records(files[3]) if r[1] <= firsts[3]
        )
        spool.ack(firsts[3])  # again: no-op
        spool.ack(2)  # backwards: no-op
        assert spool.acked_seq == firsts[3]


def test_a_batch_is_never_split_across_segments(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append(b"x" * 100)
        spool.append_many([b"y" * 100] * 20)  # 2480 bytes: more than a segment, in one write
        files = segments(d)
        assert [len(records(f)) for f in files] == [1, 20]


def test_ack_position_persists(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 11)])
        spool.ack(4)
    with open_spool(d) as spool:
        assert spool.acked_seq == 4
        assert [s for s, _ in spool.pending()] == list(range(5, 11))
        assert (d / "ack").stat().st_size == 20
        assert not (d / "ack.tmp").exists()


def test_ack_validation(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append(b"a")
        with pytest.raises(UsageError, match="cannot ack seq 2: the last appended record is 1"):
            spool.ack(2)
        with pytest.raises(UsageError, match="seq"):
            spool.ack(-1)
        spool.ack(0)
        assert spool.acked_seq == 0


def test_open_deletes_segments_an_interrupted_ack_left_behind(d: Path, tmp_path: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append_many([payload(i) for i in range(1, 31)])
        spool.append_many([payload(i) for i in range(31, 61)])
        spool.append_many([payload(i) for i in range(61, 91)])
        before = segments(d)
        backup = tmp_path / "backup"
        shutil.copytree(d, backup)
        spool.ack(61)
    # A crash between storing the ack and deleting the segments it covers:
    for f in before:
        if not f.exists():
            shutil.copy(backup / f.name, f)
    assert segments(d) == before
    with open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == list(range(62, 91))
        assert segments(d) == before[-1:]


def test_sequence_numbers_continue_from_an_ack_file_ahead_of_the_segments(d: Path) -> None:
    # fsync="interval": the ack (always synced) may be ahead of segment data lost in a power cut.
    with open_spool(d) as spool:
        spool.append_many([b"a", b"b", b"c"])
    head = struct.pack("<4sHHQ", b"\xf7ACK", 1, 0, 10)
    (d / "ack").write_bytes(head + struct.pack("<I", zlib.crc32(head)))
    with open_spool(d) as spool:
        assert list(spool.pending()) == []
        assert spool.last_seq == spool.acked_seq == 10
        assert spool.append(b"d") == 11
        assert segments(d) == [d / "0000000000000011.wal"]


def test_an_unreadable_ack_file_replays_from_the_oldest_segment(
    d: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append_many([payload(i) for i in range(1, 31)])
        spool.append_many([payload(i) for i in range(31, 61)])
        spool.ack(40)
    (d / "ack").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="witskit.storage.spool"), open_spool(d) as spool:
        # The segment holding 31..60 replays whole: at-least-once, never lost.
        assert [s for s, _ in spool.pending()] == list(range(31, 61))
        assert spool.last_seq == 60
    assert "ack file" in caplog.text
    assert "unreadable" in caplog.text


def test_the_example_in_the_docs_runs() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "spool.md").read_text(encoding="utf-8")
    example = doc.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "docs/spool.md", "exec"), {})


# --- settings and misuse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"fsync": "sometimes"}, "fsync"),
        ({"fsync_interval_ms": 0}, "fsync_interval_ms"),
        ({"fsync_interval_ms": 1.5}, "fsync_interval_ms"),
        ({"fsync_interval_ms": 10**9}, "fsync_interval_ms"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"overflow": "explode"}, "overflow"),
        ({"segment_bytes": 10}, "segment_bytes"),
        ({"segment_bytes": True}, "segment_bytes"),
        ({"segment_bytes": 1 << 20, "max_bytes": 1 << 19}, "segment_bytes"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_setting(
    d: Path, kwargs: dict[str, object], setting: str
) -> None:
    with pytest.raises(UsageError, match=setting) as info:
        Spool(d, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert not d.exists()  # nothing created on a bad call


def test_bad_payloads_are_usage_errors(d: Path) -> None:
    with open_spool(d, max_bytes=4096, segment_bytes=1024) as spool:
        with pytest.raises(UsageError, match="payload 0 must be bytes, got str"):
            spool.append("text")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="payload 1 is 5,000 bytes"):
            spool.append_many([b"ok", b"x" * 5000])
        with pytest.raises(UsageError, match="split it"):
            spool.append_many([b"x" * 1000] * 5)
        assert spool.last_seq == 0
        assert segments(d) == []


def test_closed_spool_refuses_calls_and_close_is_idempotent(d: Path) -> None:
    spool = open_spool(d)
    spool.append(b"a")
    spool.close()
    spool.close()
    assert spool.closed
    for call in (lambda: spool.append(b"b"), spool.pending, lambda: spool.ack(1), spool.sync):
        with pytest.raises(SpoolError, match="is closed"):
            call()
    assert spool.last_seq == 1  # introspection still works
    assert "closed" in repr(spool)


def test_one_spool_per_directory(d: Path) -> None:
    with open_spool(d), pytest.raises(SpoolError, match=rf"in use by process {os.getpid()} \(.*pytest"):
        open_spool(d)
    with open_spool(d) as spool:  # released on close
        spool.append(b"a")


def test_an_unusable_directory_is_a_spool_error_naming_it(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    with pytest.raises(SpoolError, match=r"cannot use .*file as the spool directory") as info:
        Spool(not_a_dir)
    assert info.value.path == str(not_a_dir)
    assert isinstance(info.value, WitsKitError)
    with pytest.raises(SpoolError, match="Not a directory"):
        Spool(not_a_dir / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_directory_is_a_spool_error(tmp_path: Path) -> None:  # pragma: no cover - needs non-root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SpoolError, match="Permission denied"):
            Spool(ro)
    finally:
        ro.chmod(0o700)


def test_files_of_a_newer_format_are_refused_not_skipped(d: Path) -> None:
    d.mkdir()
    (d / "0000000000000001.wal").write_bytes(encode(1, b"from the future", version=2))
    with pytest.raises(SpoolCorruptError, match="format version 2") as info:
        Spool(d)
    assert isinstance(info.value, SpoolError)
    with open_spool(d / "other"):
        pass  # and the failed open released nothing it should not have


# --- bounds ---------------------------------------------------------------------------------------


def test_overflow_block_refuses_and_loses_nothing(d: Path) -> None:
    body = b"x" * 100
    with open_spool(d, max_bytes=4096, segment_bytes=1024) as spool:
        appended = []
        while spool.has_room(len(body)):
            appended.append(spool.append(body))
        assert not is_full(spool)  # not yet: nothing was refused and there is room left over
        with pytest.raises(SpoolFullError) as info:
            spool.append(body)
        assert len(appended) == 4096 // (RECORD_HEADER_SIZE + 100)
        err = info.value
        assert isinstance(err, SpoolError)
        assert err.needed == RECORD_HEADER_SIZE + 100
        assert err.available < err.needed
        assert "max_bytes (4,096)" in str(err)
        assert "nothing was written" in str(err)
        assert spool.is_full
        assert not spool.has_room(100)
        assert spool.has_room(0, records=0)
        assert spool.last_seq == appended[-1]
        assert [s for s, _ in spool.pending()] == appended
        with pytest.raises(SpoolFullError):
            spool.append_many([b"y"] * 3)
        # Back-pressure lifts once acks free room.
        spool.ack(appended[9])
        assert not is_full(spool)
        assert spool.has_room(100)
        assert spool.append(body) == appended[-1] + 1
    with open_spool(d, max_bytes=4096, segment_bytes=1024) as spool:
        assert [s for s, _ in spool.pending()] == [*appended[10:], appended[-1] + 1]


def test_overflow_drop_oldest_drops_whole_old_segments_and_counts(d: Path) -> None:
    with open_spool(d, max_bytes=4096, segment_bytes=1024, overflow="drop_oldest") as spool:
        bodies = {spool.append(payload(i)): payload(i) for i in range(300)}
        assert spool.dropped_records > 0
        assert spool.pending_bytes <= 4096
        got = list(spool.pending())
        # What is left is the newest records, contiguous and intact; the rest was counted.
        assert [s for s, _ in got] == list(range(300 - len(got) + 1, 301))
        assert all(bodies[s] == body for s, body in got)
        assert len(got) + spool.dropped_records == 300
        assert not spool.is_full


def wal_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.glob("*.wal"))


@pytest.mark.parametrize("overflow", ["block", "drop_oldest"])
def test_disk_use_never_exceeds_max_bytes_even_with_a_partly_acked_segment(d: Path, overflow: str) -> None:
    # Before the fix the bound covered un-acked bytes only: the acknowledged head of the oldest
    # segment came on top, so the files could pass max_bytes by up to a segment.
    with open_spool(d, max_bytes=8192, segment_bytes=2048, overflow=overflow) as spool:
        for round_ in range(30):
            for i in range(200):
                if overflow == "block" and not spool.has_room(90):
                    break
                spool.append(payload(round_ * 1000 + i))
                assert spool.size_bytes == wal_bytes(d) <= 8192
            if spool.pending_count:  # a sink commits part of the backlog: half a segment, say
                spool.ack(spool.acked_seq + max(1, spool.pending_count // 3))
            assert spool.size_bytes == wal_bytes(d) <= 8192


def test_the_default_segment_size_follows_a_small_max_bytes(d: Path) -> None:
    # Before the fix a max_bytes below 16 MiB needed an explicit segment_bytes, or open failed.
    with open_spool(d, max_bytes=2 << 20) as spool:
        assert spool.segment_bytes == (2 << 20) // 8
    with open_spool(d) as spool:
        assert spool.segment_bytes == 16 << 20


def test_a_disk_smaller_than_max_bytes_is_warned_about_at_open(
    d: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_spool(d, max_bytes=1 << 50):  # a pebibyte: more than this disk has free
        pass
    (said,) = [r.getMessage() for r in caplog.records if "free on its disk" in r.getMessage()]
    # The line docs/spool.md shows is the line the spool writes (sizes and path aside).
    doc = (Path(__file__).resolve().parents[2] / "docs" / "spool.md").read_text(encoding="utf-8")
    shown = doc.split("### Free disk space", 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    sizes = r"[\d.,]+ (?:[KMGT]iB|bytes)"
    shown = re.sub(sizes, "\0SIZE\0", re.sub(r" /\S+ ", " \0PATH\0 ", shown))
    pattern = re.escape(shown).replace("\0SIZE\0", sizes).replace("\0PATH\0", r"\S+")
    assert re.fullmatch(pattern, said), (shown, said)
    caplog.clear()
    with open_spool(d, max_bytes=1 << 20):
        pass
    assert "free on its disk" not in caplog.text


def test_drop_oldest_counts_only_unacked_records_of_a_partly_acked_segment(d: Path) -> None:
    with open_spool(d, max_bytes=2048, segment_bytes=1024, overflow="drop_oldest") as spool:
        spool.append_many([b"x" * 76] * 10)  # 1000 bytes: segment 1
        spool.ack(4)
        spool.append_many([b"x" * 76] * 10)  # segment 2: 1600 bytes pending, fits
        assert spool.dropped_records == 0
        spool.append_many([b"x" * 76] * 5)  # segment 3: must drop segment 1 (6 un-acked records)
        assert spool.dropped_records == 6
        assert next(spool.pending())[0] == 11


# --- torn tails and corruption --------------------------------------------------------------------


def test_a_torn_last_record_is_cut_at_every_byte_position(d: Path) -> None:
    bodies = [payload(i) for i in range(1, 9)]
    with open_spool(d) as spool:
        spool.append_many(bodies[:5])
        spool.append_many(bodies[5:])
    (seg,) = segments(d)
    original = seg.read_bytes()
    last_off = records(seg)[-1][0]
    for cut in range(last_off, len(original)):
        seg.write_bytes(original[:cut])
        with open_spool(d) as spool:
            assert list(spool.pending()) == list(enumerate(bodies[:7], 1)), cut
            assert spool.torn_records_skipped == (0 if cut == last_off else 1)
            assert spool.corrupt_records_skipped == 0
            assert seg.stat().st_size == last_off
            assert spool.append(b"after") == 8
        with open_spool(d) as spool:
            assert list(spool.pending())[-2:] == [(7, bodies[6]), (8, b"after")]
            assert spool.torn_records_skipped == 0
        for extra in segments(d):
            if extra != seg:
                extra.unlink()


def test_a_torn_batch_keeps_the_records_before_the_tear(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 11)])
    (seg,) = segments(d)
    off_7 = records(seg)[6][0]
    with seg.open("r+b") as f:
        f.truncate(off_7 + 30)
    with open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == [1, 2, 3, 4, 5, 6]
        assert spool.torn_records_skipped == 1
        assert spool.append(b"x") == 7


def test_a_newest_segment_of_garbage_is_cut_and_appending_goes_on(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([b"a", b"b"])
    (d / "0000000000000003.wal").write_bytes(b"\0" * 100)  # created, then nothing made it to disk
    with open_spool(d) as spool:
        assert spool.torn_records_skipped == 1
        assert [s for s, _ in spool.pending()] == [1, 2]
        assert spool.append(b"c") == 3


@pytest.mark.parametrize(
    ("field", "delta"),
    [("magic", 0), ("crc", 4), ("version", 8), ("length", 12), ("seq", 16), ("payload", 30)],
)
def test_a_corrupt_record_in_the_middle_is_skipped_counted_and_logged(
    d: Path, caplog: pytest.LogCaptureFixture, field: str, delta: int
) -> None:
    bodies = [payload(i) for i in range(1, 11)]
    with open_spool(d) as spool:
        spool.append_many(bodies)
    (seg,) = segments(d)
    off = records(seg)[4][0]  # seq 5
    flip(seg, off + delta)
    with caplog.at_level(logging.WARNING, logger="witskit.storage.spool"), open_spool(d) as spool:
        assert list(spool.pending()) == [(s, b) for s, b in enumerate(bodies, 1) if s != 5]
        assert spool.corrupt_records_skipped == 1
        assert spool.torn_records_skipped == 0
        assert spool.pending_count == 9
        assert spool.append(b"new") == 11
    assert str(seg) in caplog.text
    assert f"byte offset {off}" in caplog.text
    assert "corrupt" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="witskit.storage.spool"), open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
        assert [s for s, _ in spool.pending(after=3)] == [4, 6, 7, 8, 9, 10, 11]
        spool.ack(7)
        assert [s for s, _ in spool.pending()] == [8, 9, 10, 11]
    # Once from the open; reading past a known bad run does not warn again.
    assert caplog.text.count("corrupt data") == 1


def test_two_corrupt_records_in_a_row_count_as_two(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 11)])
    (seg,) = segments(d)
    recs = records(seg)
    flip(seg, recs[3][0] + 30)
    flip(seg, recs[4][0] + 1)
    with open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == [1, 2, 3, 6, 7, 8, 9, 10]
        assert spool.corrupt_records_skipped == 2


def test_corruption_in_acknowledged_data_is_not_counted(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 11)])
        spool.ack(6)
    (seg,) = segments(d)
    flip(seg, records(seg)[2][0] + 30)
    with open_spool(d) as spool:
        assert [s for s, _ in spool.pending()] == [7, 8, 9, 10]
        assert spool.corrupt_records_skipped == 0


def test_a_bad_end_of_an_older_segment_is_corruption_not_a_tear(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        for i in range(1, 41):
            spool.append(payload(i))
    first = segments(d)[0]
    recs = records(first)
    size = first.stat().st_size
    flip(first, recs[-1][0] + 30)
    with open_spool(d) as spool:
        seqs = [s for s, _ in spool.pending()]
        assert recs[-1][1] not in seqs
        assert len(seqs) == 39
        assert spool.corrupt_records_skipped == 1
        assert spool.torn_records_skipped == 0
    assert first.stat().st_size == size  # evidence kept; only the newest segment is ever cut


def test_corruption_appearing_after_open_is_skipped_while_reading(
    d: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_spool(d) as spool:
        spool.append_many([payload(i) for i in range(1, 6)])
        (seg,) = segments(d)
        flip(seg, records(seg)[1][0] + 30)
        with caplog.at_level(logging.WARNING, logger="witskit.storage.spool"):
            assert [s for s, _ in spool.pending()] == [1, 3, 4, 5]
            assert [s for s, _ in spool.pending()] == [1, 3, 4, 5]
    assert caplog.text.count("found while reading") == 1


# --- fsync policies and failures ------------------------------------------------------------------


def test_fsync_always_syncs_before_returning_and_never_only_on_request(d: Path, tmp_path: Path) -> None:
    with open_spool(d, fsync="always") as spool:
        for i in range(1, 6):
            assert spool.append(b"x") == i
            assert spool.synced_seq == i
    with open_spool(tmp_path / "never", fsync="never") as spool:
        spool.append_many([b"x"] * 5)
        assert spool.synced_seq == 0
        spool.sync()
        assert spool.synced_seq == 5
    with open_spool(tmp_path / "never") as spool:
        assert spool.synced_seq == 0  # "never" does not sync on open, so it claims nothing
    with open_spool(tmp_path / "never", fsync="interval") as spool:
        assert spool.synced_seq == 5  # the other policies sync what they find on open


def test_append_many_is_one_write_and_at_most_one_data_sync(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"write": 0, "fdatasync": 0}
    real_write, real_fdatasync = os.write, os.fdatasync

    def counting_write(fd: int, data: bytes) -> int:
        calls["write"] += 1
        return real_write(fd, data)

    def counting_fdatasync(fd: int) -> None:
        calls["fdatasync"] += 1
        real_fdatasync(fd)

    with open_spool(d, fsync="always") as spool:
        spool.append(b"first")
        monkeypatch.setattr(os, "write", counting_write)
        monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
        seqs = spool.append_many([b"x" * 400] * 1000)
        assert seqs == list(range(2, 1002))
        assert calls == {"write": 1, "fdatasync": 1}


def test_a_full_disk_raises_a_clear_error_and_loses_nothing(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ENOSPC is simulated: no tiny filesystem can be mounted without root. A real short write plus
    # EFBIG (RLIMIT_FSIZE) is exercised in test_spool_crash.py.
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with open_spool(d, fsync="always") as spool:
        assert spool.append_many([b"a", b"b"]) == [1, 2]
        size = segments(d)[0].stat().st_size
        monkeypatch.setattr(os, "write", disk_full)
        with pytest.raises(SpoolError) as info:
            spool.append(b"c")
        message = str(info.value)
        assert message.startswith("disk full: cannot write spool segment")
        assert "nothing was acknowledged" in message
        assert str(segments(d)[0]) in message
        assert info.value.errno == errno.ENOSPC
        assert info.value.path == str(segments(d)[0])
        assert not isinstance(info.value, SpoolFullError)
        with pytest.raises(SpoolError, match="disk full"):
            spool.append_many([b"c", b"d"])
        spool.ack(1)  # stored in place in the existing ack file: no new block needed
        assert spool.acked_seq == 1

        # A short write, then the disk fills: the partial record is removed at once.
        state = {"calls": 0}

        def half_then_full(fd: int, data: bytes) -> int:
            state["calls"] += 1
            if state["calls"] == 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(SpoolError, match="disk full"):
            spool.append_many([b"c" * 100, b"d" * 100])
        assert segments(d)[0].stat().st_size == size
        monkeypatch.undo()
        assert spool.last_seq == 2
        assert spool.append(b"c") == 3  # no sequence number was used up
    with open_spool(d) as spool:
        assert list(spool.pending()) == [(2, b"b"), (3, b"c")]
        assert spool.torn_records_skipped == spool.corrupt_records_skipped == 0


def test_an_ack_that_cannot_be_stored_at_all_is_a_clear_error(d: Path) -> None:
    with open_spool(d) as spool:
        spool.append_many([b"a", b"b"])
        (d / "ack").unlink()
        (d / "ack").mkdir()  # neither replaced nor rewritten: EISDIR, a real OSError
        with pytest.raises(SpoolError, match=r"cannot store the ack position .* not recorded"):
            spool.ack(1)
        assert spool.acked_seq == 0
        (d / "ack").rmdir()


def test_a_full_disk_when_creating_a_segment(d: Path) -> None:
    with open_spool(d, segment_bytes=1024) as spool:
        spool.append(b"x" * 1000)
        # Make the next segment's name taken by a directory: os.open fails like a full disk would.
        (d / "0000000000000002.wal").mkdir()
        with pytest.raises(SpoolError, match=r"cannot create spool segment .*0000000000000002\.wal"):
            spool.append(b"y" * 100)
        (d / "0000000000000002.wal").rmdir()
        assert spool.append(b"y" * 100) == 2


# --- threads --------------------------------------------------------------------------------------


def test_concurrent_appends_from_threads(d: Path) -> None:
    results: dict[int, bytes] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(100):
            body = b"%d-%d" % (n, i)
            seq = spool.append(body) if i % 2 else spool.append_many([body])[0]
            with lock:
                results[seq] = body

    with open_spool(d, segment_bytes=4096) as spool:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(1, 801))
        assert dict(spool.pending()) == results


# --- the model test -------------------------------------------------------------------------------

bodies = st.binary(max_size=120)


class SpoolModel(RuleBasedStateMachine):
    """The spool against an in-memory list of un-acked records."""

    overflow = "block"
    max_bytes = 2048

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="witskit-spool-"))
        self.spool = self._open()
        self.model: list[tuple[int, bytes]] = []
        self.last = 0
        self.acked = 0
        self.dropped_seen = 0
        self.cursor = 0

    def _open(self) -> Spool:
        return Spool(
            self.dir, fsync="never", segment_bytes=1024, max_bytes=self.max_bytes, overflow=self.overflow
        )

    def _add(self, items: list[bytes]) -> None:
        try:
            seqs = self.spool.append_many(items)
        except SpoolFullError:
            assert self.overflow == "block"
            assert not self.spool.has_room(sum(map(len, items)), records=len(items))
            assert self.spool.is_full
            event("refused: spool full")
            return
        assert seqs == list(range(self.last + 1, self.last + 1 + len(items)))
        self.last += len(items)
        self.model += zip(seqs, items, strict=True)

    @rule(body=bodies)
    def append(self, body: bytes) -> None:
        self._add([body])

    @rule(items=st.lists(bodies, min_size=1, max_size=12))
    def append_many(self, items: list[bytes]) -> None:
        self._add(items)

    @precondition(lambda self: self.last > 0)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(0, self.last), label="ack")
        self.spool.ack(seq)
        self.acked = max(self.acked, seq)
        self.model = [r for r in self.model if r[0] > seq]

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = self._open()
        self.dropped_seen = 0  # a process-lifetime counter

    @rule(data=st.data())
    def read_after(self, data: st.DataObject) -> None:
        after = data.draw(st.integers(0, self.last + 2), label="after")
        limit = data.draw(st.none() | st.integers(0, 6), label="limit")
        expected = [r for r in self.model if r[0] > after]
        assert list(self.spool.pending(after=after, limit=limit)) == expected[:limit]

    @rule()
    def read_next_batch(self) -> None:
        batch = list(self.spool.pending(after=self.cursor, limit=4))
        assert batch == [r for r in self.model if r[0] > self.cursor][:4]
        if batch:
            self.cursor = batch[-1][0]
        elif self.cursor >= self.last:
            self.cursor = 0

    @invariant()
    def matches_the_model(self) -> None:
        got = list(self.spool.pending())
        if self.overflow == "drop_oldest":
            # Drops take the oldest un-acked records, and are all counted.
            new_drops = self.spool.dropped_records - self.dropped_seen
            self.dropped_seen = self.spool.dropped_records
            self.model = self.model[new_drops:]
            if new_drops:
                event("dropped oldest")
            assert self.spool.pending_bytes <= self.max_bytes
        assert self.spool.size_bytes == wal_bytes(self.dir) <= self.max_bytes  # the disk bound
        assert got == self.model
        assert self.spool.last_seq == self.last
        assert self.spool.acked_seq == self.acked
        assert self.spool.pending_count == len(self.model)
        assert self.spool.pending_bytes == sum(RECORD_HEADER_SIZE + len(b) for _, b in self.model)
        assert self.spool.pending_bytes <= self.max_bytes
        assert self.spool.torn_records_skipped == self.spool.corrupt_records_skipped == 0
        if self.spool.segment_count > 1:
            event("several segments")

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class DropOldestModel(SpoolModel):
    overflow = "drop_oldest"


MODEL_SETTINGS = settings(
    max_examples=40, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = MODEL_SETTINGS
TestDropOldestModel = DropOldestModel.TestCase
TestDropOldestModel.settings = MODEL_SETTINGS


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_spool_files_and_directory_are_private_whatever_the_umask(
    tmp_path: Path, umask: int, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # an existing data directory others may list
    old = os.umask(umask)
    try:
        with open_spool(data / "new" / "spool", fsync="interval") as spool:
            spool.append(b"rig data")
            spool.ack(1)
            spool.append(b"more rig data")
        shared = data / "spool"
        shared.mkdir()
        shared.chmod(0o755)  # left by an older version, or made by hand
        with open_spool(shared) as spool:
            spool.append(b"rig data")
    finally:
        os.umask(old)
    for directory in (data / "new", data / "new" / "spool", shared):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    files = [*(data / "new" / "spool").iterdir(), *shared.iterdir()]
    assert {f.name for f in files} >= {"lock", "ack", "0000000000000001.wal", "0000000000000002.wal"}
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert data.stat().st_mode & 0o777 == 0o755  # the data directory is not the spool's to change
    assert "was readable by others (mode 755); setting it to 0700" in caplog.text


_FULL_DISK_CHILD = r"""
import errno, json, sys
from witskit.storage.spool import Spool, SpoolError
out = {}
with Spool(sys.argv[1], fsync="always", max_bytes=1 << 20, segment_bytes=8 << 10) as spool:
    try:
        while True:
            spool.append(b"x" * 300)
    except SpoolError as exc:
        out["full"] = exc.errno == errno.ENOSPC and str(exc).startswith("disk full:")
    out["spooled"] = spool.last_seq
    try:
        spool.ack(spool.last_seq)  # the database committed everything: this must free the disk
        out["acked"] = spool.acked_seq
    except SpoolError as exc:
        out["ack_error"] = str(exc)
    try:
        out["after"] = spool.append(b"y" * 300)
    except SpoolError as exc:
        out["append_error"] = str(exc)
with Spool(sys.argv[1]) as spool:
    out["reopened_acked"] = spool.acked_seq
    out["reopened_pending"] = [seq for seq, _ in spool.pending()]
print(json.dumps(out))
"""


def test_an_ack_on_a_full_disk_is_stored_and_frees_the_disk(tmp_path: Path) -> None:
    """A real ENOSPC: the spool on a 64 KiB tmpfs, mounted in a private mount namespace.

    Before the fix the ack needed a new file (ack.tmp, renamed over ack): on a full disk it
    failed, so no segment was ever deleted and the spool stayed full for good, even with the
    database back.
    """
    import json
    import subprocess
    import sys

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is not installed: cannot mount a private tmpfs")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(_FULL_DISK_CHILD)
    shell = 'mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" "$3" "$1/spool"'
    result = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            shell,
            "sh",
            mnt,
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if result.returncode != 0 and ("mount" in result.stderr or "unshare" in result.stderr):
        pytest.skip(f"cannot mount a private tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["full"] is True
    assert out["spooled"] > 50
    assert "ack_error" not in out, out
    assert out["acked"] == out["spooled"]
    assert out["after"] == out["spooled"] + 1  # space came back: appends work again
    assert out["reopened_acked"] == out["spooled"]
    assert out["reopened_pending"] == [out["spooled"] + 1]


def test_acks_stored_in_place_on_a_full_disk_are_logged_once_not_per_commit(
    d: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # bench/bench_faults.py, disk full with the database up: a warning line per commit (17 in 4 s),
    # which buried the "spool cannot write" line the operator needs. Once per episode and every 30 s.
    with open_spool(d, fsync="never") as spool:
        spool.append_many([b"a", b"b", b"c", b"d"])

        def disk_full(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", disk_full)
        with caplog.at_level(logging.WARNING, logger="witskit.storage.spool"):
            for seq in (1, 2, 3, 4):
                spool.ack(seq)
        monkeypatch.undo()
        assert spool.acked_seq == 4
    said = [r for r in caplog.records if "stored the spool ack position in place" in r.getMessage()]
    assert len(said) == 1
