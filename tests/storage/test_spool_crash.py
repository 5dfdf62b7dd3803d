"""The spool's loss window, tested for real: kill -9 of a writer, a real failing write, fsync timing.

What can be tested without root (no power cut, no dm-flakey):

- ``kill -9`` of a process appending in a tight loop: under every fsync policy, every record whose
  ``append`` returned (the child prints its seq only then) is present after reopening, with the right
  payload; the spool opens with no corruption (a torn tail at most) and takes new appends.
- ``fsync="interval"``: after each append returns, every record that is not yet synced
  (``seq > synced_seq``) returned less than ``fsync_interval_ms`` before that append started: the
  stated power-cut loss window, checked against the spool's own account of what it synced.
- A real short write followed by an OS error (``RLIMIT_FSIZE`` makes the kernel write part of a
  batch, then fail with EFBIG): nothing of the batch stays, nothing before it is lost.
"""

from __future__ import annotations

import errno
import inspect
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from witskit.storage.spool import Spool


def payload_of(j: int) -> bytes:
    return b"&&\r\n0108%d\r\n!!\r\n" % j * (1 + j % 9)


# The child writes record j with seq j + 1 (one record per seq, starting after what is there), so
# the parent can check every record's payload from its seq alone.
CHILD = inspect.getsource(payload_of) + textwrap.dedent(
    """
    import sys
    from witskit.storage.spool import Spool

    spool = Spool(sys.argv[1], fsync=sys.argv[2], fsync_interval_ms=20, segment_bytes=16 * 1024)
    j = spool.last_seq
    out = sys.stdout
    while True:
        n = 1 + j % 7
        batch = [payload_of(k) for k in range(j, j + n)]
        seqs = [spool.append(batch[0])] if n == 1 else spool.append_many(batch)
        # Reported only after append returned: these are the records the caller was promised.
        out.write("".join(f"{s} {spool.synced_seq}\\n" for s in seqs))
        out.flush()
        j += n
    """
)

# Enough records to cross several 16 KiB segments; the time cap keeps a slow disk (fsync="always"
# costs 0.3-3 ms per append on a virtual disk) within the suite's budget.
KILL_AFTER_RECORDS = 800
KILL_AFTER_SECONDS = 1.0


def run_and_kill(directory: Path, policy: str) -> list[tuple[int, int]]:
    """Start a writer, SIGKILL it mid-stream; return the (seq, synced_seq) lines it reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), policy], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[bytes] = []
    try:
        lines.append(proc.stdout.readline())  # the clock starts once it writes (startup varies)
        deadline = time.monotonic() + KILL_AFTER_SECONDS
        while lines[-1] and len(lines) < KILL_AFTER_RECORDS and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines += proc.stdout.read().splitlines(keepends=True)  # printed before it died
    stderr = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, stderr
    reported = [line.split() for line in lines if line.endswith(b"\n")]
    assert len(reported) > 50, f"the child reported too little before it was killed: {stderr}"
    return [(int(s), int(synced)) for s, synced in reported]


def check_everything_reported_survived(directory: Path, reported: list[tuple[int, int]]) -> None:
    with Spool(directory, fsync="always") as spool:
        got = dict(spool.pending())
        # No corruption from a crash: at most the record being written is torn.
        assert spool.corrupt_records_skipped == 0
        assert spool.torn_records_skipped <= 1
        missing = [s for s, _ in reported if s not in got]
        assert missing == [], f"{len(missing)} reported records lost, first {missing[:5]}"
        # Every record on disk, reported or written just before the kill, is intact and in order.
        assert list(got) == list(range(1, len(got) + 1))
        assert all(body == payload_of(s - 1) for s, body in got.items())
        last = spool.last_seq
        assert last >= reported[-1][0]
        assert spool.append(b"after the crash") == last + 1
    with Spool(directory, fsync="never") as spool:
        assert spool.last_seq == last + 1
        assert list(spool.pending(after=last)) == [(last + 1, b"after the crash")]
        assert spool.torn_records_skipped == 0


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_kill_9_loses_no_record_whose_append_returned(tmp_path: Path, policy: str) -> None:
    directory = tmp_path / "spool"
    reported = run_and_kill(directory, policy)
    check_everything_reported_survived(directory, reported)
    if policy == "always":
        assert all(synced >= s for s, synced in reported)  # synced before append returned
    else:
        assert [synced for _, synced in reported] == sorted(synced for _, synced in reported)


def test_kill_9_twice_on_the_same_directory(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    first = run_and_kill(directory, "always")
    second = run_and_kill(directory, "always")  # the child resumes at last_seq after recovery
    assert second[0][0] > first[-1][0]
    check_everything_reported_survived(directory, first + second)


def test_interval_policy_unsynced_records_are_younger_than_the_interval(tmp_path: Path) -> None:
    interval_ms = 20
    interval = interval_ms / 1000
    saw_unsynced = False
    with Spool(tmp_path / "spool", fsync="interval", fsync_interval_ms=interval_ms) as spool:
        returned: list[tuple[int, float]] = []  # (seq, when its append returned)
        synced_upto = 0  # index into returned: records known old enough to be synced
        end = time.monotonic() + 0.5
        i = 0
        while time.monotonic() < end:
            started = time.monotonic()
            seqs = spool.append_many([b"x" * 200] * (1 + i % 3))
            synced = spool.synced_seq
            finished = time.monotonic()
            while synced_upto < len(returned) and returned[synced_upto][1] <= started - interval:
                seq = returned[synced_upto][0]
                assert seq <= synced, f"seq {seq} returned over {interval_ms} ms ago but is not synced"
                synced_upto += 1
            returned += [(s, finished) for s in seqs]
            saw_unsynced |= synced < seqs[-1]
            if i % 50 == 0:
                time.sleep(interval * 1.5)  # idle gaps: the next append syncs at once
            i += 1
        # It is a window, not a sync per append (or this policy would be "always").
        assert saw_unsynced
        assert synced_upto > 100
        spool.close()
        assert spool.synced_seq == spool.last_seq  # close() synced the tail
    with Spool(tmp_path / "spool", fsync="interval") as spool:
        assert spool.synced_seq == spool.last_seq


CHILD_RLIMIT = textwrap.dedent(
    """
    import resource, sys
    from witskit.storage.spool import Spool, SpoolError

    # Files may not grow past 20,000 bytes: the kernel writes what fits of a batch, then EFBIG.
    # (Python ignores SIGXFSZ, so the write fails instead of killing the process.)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    spool = Spool(sys.argv[1], fsync="always")
    try:
        while True:
            seqs = spool.append_many([b"y" * 1000] * 3)
            print(*seqs, flush=True)
    except SpoolError as exc:
        print("ERROR", exc.errno, spool.last_seq, exc, flush=True)
    spool.close()
    """
)


def test_a_real_partial_write_failure_leaves_no_partial_record(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    out = subprocess.run(
        [sys.executable, "-c", CHILD_RLIMIT, str(directory)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    *appended, error = out
    assert error.startswith(f"ERROR {errno.EFBIG} ")
    assert "File too large" in error
    assert "were not spooled and nothing was acknowledged" in error
    seqs = [int(s) for line in appended for s in line.split()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert int(error.split()[2]) == seqs[-1]
    # The limit stopped the batch that crossed it, and its partial bytes were cut at once.
    assert len(seqs) * 1024 <= 20_000 < (len(seqs) + 3) * 1024
    (segment,) = directory.glob("*.wal")
    assert segment.stat().st_size == len(seqs) * 1024
    with Spool(directory, fsync="never") as spool:
        assert [s for s, _ in spool.pending()] == seqs
        assert spool.torn_records_skipped == spool.corrupt_records_skipped == 0
        assert spool.append(b"z") == seqs[-1] + 1
