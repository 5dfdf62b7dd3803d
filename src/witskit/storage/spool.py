"""A durable local spool (write-ahead log) for received frames: nothing lost, replayed in order.

A WITS feed cannot retransmit, so the pipeline appends every received frame here *before* any
database work and acknowledges it only after the database commit that covers it. While the database
is down the spool grows, up to ``max_bytes`` of segment files on disk (then ``overflow`` decides);
after a restart or an outage the backlog replays oldest first. The database side is idempotent by
key, so the spool's job is to never lose an appended record and to replay in order: delivery is
at-least-once, never at-most-once.

Files in the spool directory (see ``docs/spool.md`` for the byte layout):

- ``NNNNNNNNNNNNNNNN.wal``: segments, named by the (16-digit, zero-padded) sequence number of their
  first record, each a run of records ``header + payload``;
- ``ack``: the acknowledged position (replaced atomically: ``ack.tmp`` + ``os.replace``);
- ``lock``: holds an exclusive ``flock`` while a :class:`Spool` has the directory open;
- ``batch-<hash>``: not the spool's: a pipeline's note of the batch a JetStream sink is publishing
  (``witskit.pipeline.runner``).

The API is synchronous and every call is short (one ``write``, at most one ``fdatasync``), so asyncio
code may call it directly or through ``asyncio.to_thread``; a :class:`threading.Lock` makes it safe
from a thread pool. POSIX only (``flock``, ``fdatasync``, directory ``fsync``).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import mmap
import os
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from witskit.errors import UsageError, WitsKitError

__all__ = [
    "DEFAULT_FSYNC_INTERVAL_MS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "FSYNC_POLICIES",
    "MAX_PAYLOAD_BYTES",
    "OVERFLOW_POLICIES",
    "RECORD_HEADER_SIZE",
    "SEGMENTS_PER_BOUND",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFullError",
    "default_segment_bytes",
]

log = logging.getLogger("witskit.storage.spool")

# --- settings -------------------------------------------------------------------------------------

FSYNC_POLICIES: Final = ("always", "interval", "never")
OVERFLOW_POLICIES: Final = ("block", "drop_oldest")

# A tenth of a second of frames at risk on a power cut is a few frames of a 1 Hz feed, and one
# fdatasync per 100 ms costs a spinning disk ~10% of its time, an SSD almost nothing.
DEFAULT_FSYNC_INTERVAL_MS: Final = 100
# Longer than this and "interval" is no longer a small window; use "never" if that is what you mean.
MAX_FSYNC_INTERVAL_MS: Final = 60_000
# 1 GiB holds about 2.5 million 400-byte frames: a day of a busy full-WITS feed, enough to ride out
# a database outage; small next to a rig PC's disk.
DEFAULT_MAX_BYTES: Final = 1 << 30
# Segments are the unit of deletion (after ack) and of loss (drop_oldest): 16 MiB is 1/64 of the
# default bound, so a drop loses ~1.6% of a full backlog, and a segment is scanned in ~10 ms on open.
DEFAULT_SEGMENT_BYTES: Final = 16 << 20
# With a smaller bound the default segment is this fraction of it: the acknowledged head of the
# oldest segment counts against the bound until the whole segment is acknowledged, so a backlog
# always has at least 7/8 of max_bytes, and a drop loses at most 1/8 of it.
SEGMENTS_PER_BOUND: Final = 8
# Below this nearly every record gets its own file (a create and a directory fsync per append).
# It is this low so that tests can make the spool rotate every few records.
MIN_SEGMENT_BYTES: Final = 1 << 10
# Replay maps a whole segment and drop_oldest drops one at a time: beyond 1 GiB both get too coarse.
MAX_SEGMENT_BYTES: Final = 1 << 30
# A WITS frame is ~1 KiB; the cap bounds what a corrupt length field can make the reader believe.
MAX_PAYLOAD_BYTES: Final = 64 << 20

# While the disk stays full every commit stores its ack in place: say so once, then this often
# (seconds), like the pipeline's reminders, not once per commit.
_REMIND_IN_PLACE: Final = 30.0

# --- on-disk format -------------------------------------------------------------------------------

FORMAT_VERSION: Final = 1
# Not ASCII and not valid UTF-8 (0xF7 never starts a UTF-8 sequence), so a WITS frame (ASCII text)
# cannot contain it: resynchronising after corruption cannot be fooled by payload bytes.
RECORD_MAGIC: Final = b"\xf7SPL"
ACK_MAGIC: Final = b"\xf7ACK"
# magic, crc32, version, flags, payload length, seq: little-endian, 24 bytes.
_HEADER: Final = struct.Struct("<4sIHHIQ")
RECORD_HEADER_SIZE: Final = _HEADER.size
# The CRC covers the header from the version field on (the magic is a constant and the CRC cannot
# cover itself) and then the payload.
_CRC_FROM: Final = 8
_FIELDS: Final = struct.Struct("<HHIQ")  # version, flags, length, seq: the CRC-covered header part
_CRC: Final = struct.Struct("<I")
# ack file: magic, version, reserved, acked seq, crc32 of the first 16 bytes: 20 bytes.
_ACK: Final = struct.Struct("<4sHHQI")

SEGMENT_SUFFIX: Final = ".wal"
_SEGMENT_NAME: Final = re.compile(r"^(\d{16})\.wal$")
ACK_FILE: Final = "ack"
ACK_TMP_FILE: Final = "ack.tmp"
LOCK_FILE: Final = "lock"
# Spool files hold rig data: readable by the service account only.
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_DISK_FULL: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

_REC: Final = 0
_BAD: Final = 1

_Buffer = bytes | mmap.mmap


def default_segment_bytes(max_bytes: int) -> int:
    """The segment size used when none is given: ``min(16 MiB, max_bytes / 8)``, at least 1 KiB."""
    return max(MIN_SEGMENT_BYTES, min(DEFAULT_SEGMENT_BYTES, max_bytes // SEGMENTS_PER_BOUND))


def _fdatasync(fd: int) -> None:
    # fdatasync flushes the data and the metadata needed to read it back (the file size), which is
    # all a log needs; it skips the mtime update fsync would also force.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


# --- errors ---------------------------------------------------------------------------------------


class SpoolError(WitsKitError):
    """The spool's directory or disk failed (the environment's fault); the message names the path.

    ``path`` is the file or directory concerned and ``errno`` the OS error number, when known.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, errno: int | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.errno = errno


class SpoolFullError(SpoolError):
    """``append`` refused: the segment files would exceed ``max_bytes`` (``overflow="block"``).

    Nothing of the refused call was written and nothing already spooled is lost. The caller applies
    back-pressure (stop reading its source) and retries once :meth:`Spool.has_room` says so, i.e.
    after :meth:`Spool.ack` has freed room. ``needed`` is the size of the refused call in bytes
    (headers included) and ``available`` the room left.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str], needed: int, available: int) -> None:
        super().__init__(message, path=path)
        self.needed = needed
        self.available = available


class SpoolCorruptError(SpoolError):
    """The spool holds files this version of WitsKit cannot interpret (a newer on-disk format).

    Random corruption never raises this (bad records are skipped, counted and logged); only a
    record or ack file with a valid checksum and an unknown format version does, because skipping
    data that is readable by a newer WitsKit would lose it silently.
    """


# --- scanning -------------------------------------------------------------------------------------


def _record_at(buf: _Buffer, off: int, end: int, prev_seq: int, path: Path) -> tuple[int, int, bytes] | None:
    """``(seq, end offset, payload)`` of a valid record at ``off``, or None."""
    if end - off < RECORD_HEADER_SIZE:
        return None
    magic, crc, version, flags, length, seq = _HEADER.unpack_from(buf, off)
    if magic != RECORD_MAGIC or length > MAX_PAYLOAD_BYTES:
        return None
    start = off + RECORD_HEADER_SIZE
    stop = start + length
    # Sequence numbers only grow: a "record" that goes backwards is stale bytes, not a record.
    if stop > end or seq <= prev_seq:
        return None
    payload = buf[start:stop]
    if zlib.crc32(payload, zlib.crc32(buf[off + _CRC_FROM : start])) != crc:
        return None
    if version != FORMAT_VERSION or flags != 0:
        raise SpoolCorruptError(
            f"spool segment {path} holds a record (byte offset {off}) of format version {version} "
            f"(flags {flags:#x}); this WitsKit reads version {FORMAT_VERSION}: upgrade WitsKit to read it",
            path=path,
        )
    return seq, stop, payload


def _scan(
    buf: _Buffer, start: int, end: int, prev_seq: int, path: Path
) -> Iterator[tuple[int, int, int, int, bytes]]:
    """Walk ``buf[start:end]`` record by record.

    Yields ``(_REC, offset, seq, end offset, payload)`` for each valid record and
    ``(_BAD, offset, resume offset, next seq, b"")`` for each unreadable run: ``resume`` is where the
    next valid record starts (found by searching for the magic and checking the CRC), or ``end``
    with ``next seq`` 0 when nothing valid follows (a torn tail).
    """
    off = start
    while off < end:
        found = _record_at(buf, off, end, prev_seq, path)
        if found is not None:
            seq, stop, payload = found
            yield _REC, off, seq, stop, payload
            prev_seq = seq
            off = stop
            continue
        candidate = off
        while True:
            candidate = buf.find(RECORD_MAGIC, candidate + 1, end)
            if candidate < 0:
                yield _BAD, off, end, 0, b""
                return
            found = _record_at(buf, candidate, end, prev_seq, path)
            if found is not None:
                yield _BAD, off, candidate, found[0], b""
                break
        off = candidate


def _count_magic(buf: _Buffer, start: int, end: int) -> int:
    """How many record headers may have started in ``buf[start:end]`` (an estimate of records lost)."""
    n = 0
    pos = buf.find(RECORD_MAGIC, start, end)
    while pos >= 0:
        n += 1
        pos = buf.find(RECORD_MAGIC, pos + 1, end)
    return n


@contextlib.contextmanager
def _mapped(path: Path, end: int | None = None) -> Iterator[tuple[_Buffer, int]]:
    """Map ``path`` read-only (up to ``end`` bytes); a missing file reads as empty.

    A mapping is never truncated under the reader: the spool only shortens a file on open (before
    any reader) or back to its tracked good size after a failed write (readers map at most that).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:  # acknowledged or dropped since the caller looked
        yield b"", 0
        return
    mm: mmap.mmap | None = None
    try:
        size = os.fstat(fd).st_size
        n = size if end is None else min(end, size)
        if n > 0:
            mm = mmap.mmap(fd, n, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        yield (mm if mm is not None else b""), n
    finally:
        if mm is not None:
            mm.close()


def _encode(payloads: Sequence[bytes], first_seq: int) -> bytes:
    # Locals: this loop runs once per record of every append_many batch.
    pack_fields, pack_crc, crc32, version = _FIELDS.pack, _CRC.pack, zlib.crc32, FORMAT_VERSION
    parts: list[bytes] = []
    for seq, payload in enumerate(payloads, first_seq):
        fields = pack_fields(version, 0, len(payload), seq)
        parts += (RECORD_MAGIC, pack_crc(crc32(payload, crc32(fields))), fields, payload)
    return b"".join(parts)


def _as_bytes(payload: object, index: int) -> bytes:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise UsageError(f"payload {index} must be bytes, got {type(payload).__name__}")
    return bytes(payload)


def _size(n: int) -> str:
    """Bytes for a person: ``1.5 GiB``."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        raise UsageError(f"{name} must be at least {minimum:,}{upper}, got {value:,}")
    return value


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    assert isinstance(value, str)
    return value


def _private_dir(d: Path) -> None:
    """Create ``d`` (and missing parents) with mode 0700; tighten an existing ``d`` others can read.

    The mode is given to ``mkdir`` (umask can only take bits away), so no moment exists when the
    directory is open to others. Existing parents are left as they are: they are not the spool's.
    """
    missing = [p for p in (d, *d.parents) if not p.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            path.mkdir(mode=_DIR_MODE)
    mode = d.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("spool directory %s was readable by others (mode %o); setting it to 0700", d, mode)
        try:
            d.chmod(_DIR_MODE)
        except OSError as exc:  # not ours to change: the files inside are 0600 all the same
            log.warning("cannot change the mode of spool directory %s: %s", d, exc.strerror or exc)


def _lock_exclusive(fd: int) -> bool:
    """Take the directory's writer lock without waiting; False if another Spool holds it.

    The holder writes its pid and command line into the lock file, so that a process refused the
    lock can say who has it (:func:`_lock_holder`).
    """
    if sys.platform == "win32":  # pragma: no cover - no flock; one writer per directory is on you
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    with contextlib.suppress(OSError):  # only a courtesy to the next process: never fatal
        holder = f"{os.getpid()} {_command_line()}\n".encode("utf-8", "replace")
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
    return True


# user:password@ in a URL on the command line (--db postgresql://u:p@host), and secret query
# options (?key_password=..., &token=...): never copied anywhere.
_URL_PASSWORD: Final = re.compile(r"(://[^/:@\s]*):[^@/\s]*@")
_SECRET_OPTION: Final = re.compile(r"([?&][^=&\s]*(?:pass|secret|token|key)[^=&\s]*=)[^&\s]*", re.IGNORECASE)


def _command_line() -> str:
    """This process's command line, short, without passwords (``witskit run --port 8080``)."""
    argv = list(sys.argv) or ["?"]
    prog = os.path.basename(argv[0])
    if prog == "__main__.py":  # python -m package
        prog = f"python -m {os.path.basename(os.path.dirname(argv[0]))}"
    argv[0] = prog
    line = _URL_PASSWORD.sub(r"\1:***@", " ".join(argv))
    return _SECRET_OPTION.sub(r"\1***", line)[:300]


def _lock_holder(fd: int) -> str:
    """``process 1234 (witskit run)``: who holds the lock, from what it wrote in the lock file."""
    try:
        text = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    # Printable text only: the file's bytes end up on a terminal.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"process {pid} ({command})" if command else f"process {pid}"


@dataclass(slots=True, eq=False)
class _Segment:
    first_seq: int
    path: Path
    size: int = 0  # end of the last good record: readers and the bound never look past it
    count: int = 0  # good records in the file
    last_seq: int = 0  # seq of the last good record (first_seq - 1 while empty)
    sealed: bool = False  # no more appends: the next record starts a new segment
    bad: dict[int, int] = field(default_factory=dict)  # known unreadable runs: start -> resume offset


# --- the spool ------------------------------------------------------------------------------------


class Spool:
    """A durable, bounded, ordered spool of byte records in ``directory``.

    ``append``/``append_many`` return sequence numbers (1, 2, ..., monotonic across restarts);
    ``pending()`` yields the un-acknowledged records oldest first; ``ack(seq)`` says everything up
    to ``seq`` is committed downstream, which deletes fully acknowledged segments.

    **fsync policy and loss window.** Every append is written to the operating system (one
    ``write``) before it returns, so a crash of the *process* (``kill -9``, an exception, OOM kill)
    loses nothing that ``append`` returned, under any policy. The policy bounds what a crash of the
    *machine* (power cut, kernel panic) may lose:

    - ``"always"``: ``fdatasync`` before every append returns. Loss window: none; a record whose
      append returned survives a power cut.
    - ``"interval"`` (default): ``fdatasync`` at the first append that comes ``fsync_interval_ms``
      or more after the previous sync, and on :meth:`sync`, :meth:`close` and on open. Loss window:
      the records appended since the last sync, which (when each append returns) are only ones that
      returned less than ``fsync_interval_ms`` before that append started; if appends stop, the
      tail stays unsynced until the next append, ``sync()`` or ``close()``, so an idle-prone caller
      calls ``sync()`` from a timer. ``synced_seq`` says how far the durable prefix reaches.
    - ``"never"``: the OS writes back when it likes (typically within 30 s on Linux); only
      ``sync()`` forces it. For tests and benchmarks.

    A torn write or a power cut can leave a partial record at the end of the newest segment: it is
    detected by its CRC on open, counted in ``torn_records_skipped``, cut off, and appending
    continues. A bad record elsewhere (real corruption) is skipped, counted in
    ``corrupt_records_skipped`` and logged with the file and byte offset; the records after it are
    kept. Opening never raises for either; it raises :class:`SpoolError` only if the directory is
    unusable (and :class:`SpoolCorruptError` for files of a newer format).

    **Bound.** The segment files (:attr:`size_bytes`: un-acknowledged records with their headers,
    plus the acknowledged head of the oldest segment, which is deleted only once wholly
    acknowledged) never exceed ``max_bytes``: that is the disk the spool uses, besides the 20-byte
    ``ack`` file. When an append would pass it, ``overflow="block"`` raises
    :class:`SpoolFullError` (nothing written; the caller stops reading its source and retries when
    :meth:`has_room`), and ``"drop_oldest"`` deletes the oldest segments (never the one being
    written) and adds the un-acked records lost to ``dropped_records``.

    Segments rotate when the next write would take the current one past ``segment_bytes`` (a
    single ``append_many`` batch is never split, so a segment may exceed it by one batch).
    ``segment_bytes`` must not exceed ``max_bytes``; by default it is ``min(16 MiB, max_bytes /
    8)`` (:func:`default_segment_bytes`). On open, a warning says when the disk has less free space
    than ``max_bytes`` still allows.

    One ``Spool`` per directory: a second one (in any process) gets :class:`SpoolError`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str = "interval",
        fsync_interval_ms: int = DEFAULT_FSYNC_INTERVAL_MS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        overflow: str = "block",
        segment_bytes: int | None = None,
    ) -> None:
        self._fsync = _check_choice("fsync", fsync, FSYNC_POLICIES)
        self._interval_ms = _check_int("fsync_interval_ms", fsync_interval_ms, 1, MAX_FSYNC_INTERVAL_MS)
        self._interval_s = self._interval_ms / 1000
        self._overflow = _check_choice("overflow", overflow, OVERFLOW_POLICIES)
        self._max_bytes = _check_int("max_bytes", max_bytes, MIN_SEGMENT_BYTES)
        if segment_bytes is None:
            segment_bytes = default_segment_bytes(max_bytes)
        self._segment_bytes = _check_int("segment_bytes", segment_bytes, MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
        self._in_place_said: float | None = None  # when an ack stored in place was last logged
        if segment_bytes > max_bytes:
            raise UsageError(
                f"segment_bytes ({segment_bytes:,}) must not exceed max_bytes ({max_bytes:,}): a segment "
                "is the unit drop_oldest deletes, so several must fit in the bound"
            )
        if not isinstance(directory, (str, os.PathLike)):
            raise UsageError(f"directory must be a path, got {directory!r}")
        self._dir = Path(directory)

        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # open for append on self._segments[-1]
        self._dir_fd: int | None = None
        self._lock_fd: int | None = None
        self._closed = False
        self._acked = 0
        self._next_seq = 1
        self._synced_seq = 0
        self._dirty = False  # bytes written through self._fd since its last fdatasync
        self._dir_dirty = False  # a segment was created since the directory's last fsync
        self._unsynced_sealed: list[Path] = []  # rotated away from with data not yet synced
        self._last_sync = time.monotonic()
        self._head_offset = 0  # byte offset of the first un-acked record in self._segments[0]
        self._head_skipped = 0  # acked records before it
        self._total_size = 0  # sum of segment sizes
        self._total_count = 0  # sum of segment counts
        self._dropped = 0
        self._torn = 0
        self._corrupt = 0
        self._refused = 0  # size of the last append refused by overflow="block" (0: none since)
        # Where the last pending() stopped: (last seq yielded, its segment's first seq, offset after
        # it). A replay loop calls pending(after=last, limit=n) repeatedly; this makes each call
        # start where the previous ended instead of re-scanning the segment from its start.
        self._hint: tuple[int, int, int] | None = None
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # -- opening -----------------------------------------------------------------------------------

    def _open(self) -> None:
        d = self._dir
        try:
            _private_dir(d)
            self._dir_fd = os.open(d, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            self._lock_fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, _FILE_MODE)
            locked = _lock_exclusive(self._lock_fd)
            names = os.listdir(d)
        except OSError as exc:
            raise SpoolError(
                f"cannot use {d} as the spool directory: {exc.strerror or exc}", path=d, errno=exc.errno
            ) from exc
        if not locked:
            assert self._lock_fd is not None
            raise SpoolError(
                f"spool directory {d} is in use by {_lock_holder(self._lock_fd)}, which holds the lock "
                f"on {d / LOCK_FILE}; a spool directory takes one writer: stop that process, or give "
                "this one its own data directory (WITS_DATA_DIR=/path/to/dir, or spool: dir: in the "
                "pipeline file)",
                path=d,
            )
        found = sorted((int(m.group(1)), d / name) for name in names if (m := _SEGMENT_NAME.match(name)))
        stored_ack = self._read_ack()
        if ACK_TMP_FILE in names:  # an ack write interrupted before its rename: the old file stands
            self._unlink(d / ACK_TMP_FILE)
        if stored_ack is None:
            # Fully acked segments are deleted only after the ack is stored, so everything before
            # the oldest segment was acknowledged; replaying that segment whole is safe (idempotent).
            stored_ack = found[0][0] - 1 if found else 0
        acked = stored_ack
        high = acked  # the highest sequence number ever handed out, as far as the disk knows

        # A segment holds seqs below the next one's first, so names alone tell which are acked.
        keep: list[tuple[int, Path]] = []
        for i, (first, path) in enumerate(found):
            high = max(high, first - 1)
            if i + 1 < len(found) and found[i + 1][0] - 1 <= acked:
                self._unlink(path)
            else:
                keep.append((first, path))

        segments: list[_Segment] = []
        heads: list[tuple[int, int]] = []  # per segment: (first un-acked offset, acked records before it)
        for i, (first, path) in enumerate(keep):
            is_last = i == len(keep) - 1
            upper = None if is_last else keep[i + 1][0] - 1
            seg = _Segment(first, path, last_seq=first - 1, sealed=not is_last)
            heads.append(self._scan_segment(seg, acked, upper, is_last))
            high = max(high, seg.last_seq)
            segments.append(seg)
        # A crash before the newest segment's first record was complete leaves it empty.
        if segments and segments[-1].count == 0:
            self._unlink(segments.pop().path)
            heads.pop()
        # The newest segment may turn out fully acked too (an ack stored before a crash that cut it).
        while segments:
            upper_0 = segments[1].first_seq - 1 if len(segments) > 1 else segments[0].last_seq
            if upper_0 > acked:
                break
            self._unlink(segments.pop(0).path)
            heads.pop(0)

        self._segments = segments
        self._acked = acked
        self._next_seq = high + 1
        self._total_size = sum(s.size for s in segments)
        self._total_count = sum(s.count for s in segments)
        if segments:
            self._head_offset, self._head_skipped = heads[0]
        if self._fsync != "never":
            # Whatever a previous run left in the page cache becomes durable now, so synced_seq can
            # start at the top (cheap for files that were synced already).
            for seg in segments:
                self._sync_path(seg.path)
            self._sync_dir()
            self._synced_seq = high
        else:
            self._synced_seq = acked  # nothing un-acked is known to be durable
        self._last_sync = time.monotonic()
        if ACK_FILE not in names:
            # An ack file from the start, so that an ack can always be stored in place when the
            # disk is full (see _overwrite_ack).
            try:
                self._store_ack(acked)
            except SpoolError as exc:
                log.warning("%s", exc)
        self._check_free_space()
        log.info(
            "opened spool %s: %d pending records (%d bytes) in %d segments, acked up to %d, next seq %d",
            d,
            self._total_count - self._head_skipped,
            self._total_size - self._head_offset,
            len(segments),
            acked,
            self._next_seq,
        )

    def _check_free_space(self) -> None:
        """Warn when the disk cannot hold what max_bytes allows: it would fill before the spool."""
        try:
            st = os.statvfs(self._dir)
        except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
            return
        free = st.f_bavail * st.f_frsize
        more = self._max_bytes - self._total_size
        if free < more:
            log.warning(
                "spool %s may grow by %s more (max_bytes %s) but only %s are free on its disk: the "
                "disk fills first, and then appends fail and sources pause until space returns; lower "
                "max_bytes (WITS_SPOOL_MAX_BYTES) or free space",
                self._dir,
                _size(more),
                _size(self._max_bytes),
                _size(free),
            )

    def _scan_segment(self, seg: _Segment, acked: int, upper: int | None, is_last: bool) -> tuple[int, int]:
        """Validate one segment on open; return (offset of its first un-acked record, acked count)."""
        path = seg.path
        head_offset: int | None = None
        skipped = 0
        torn_at: int | None = None
        try:
            with _mapped(path) as (buf, n):
                for kind, off, a, b, _ in _scan(buf, 0, n, seg.first_seq - 1, path):
                    if kind == _REC:
                        seg.count += 1
                        seg.last_seq = a
                        seg.size = b
                        if a <= acked:
                            skipped += 1
                        elif head_offset is None:
                            head_offset = off
                        continue
                    resume, next_seq = a, b
                    if resume < n:  # a bad run with good records after it: real corruption
                        seg.bad[off] = resume
                        self._report_corrupt(path, off, resume, seg.last_seq, next_seq - 1, acked)
                    elif is_last:  # the newest record was being written when the process died
                        torn_at = off
                        lost = max(1, _count_magic(buf, off, n))
                        self._torn += lost
                        log.warning(
                            "spool segment %s: torn record(s) at byte offset %d (%d bytes, about %d "
                            "record(s)) left by a crash; truncating the file to %d bytes",
                            path,
                            off,
                            n - off,
                            lost,
                            off,
                        )
                    else:  # a sealed segment ends in bad bytes: corruption, not a crash
                        assert upper is not None
                        self._report_corrupt(path, off, n, seg.last_seq, upper, acked)
        except OSError as exc:
            raise SpoolError(
                f"cannot read spool segment {path}: {exc.strerror or exc}", path=path, errno=exc.errno
            ) from exc
        if torn_at is not None:
            try:
                os.truncate(path, torn_at)
            except OSError as exc:
                raise SpoolError(
                    f"cannot truncate the torn tail of spool segment {path}: {exc.strerror or exc}",
                    path=path,
                    errno=exc.errno,
                ) from exc
        return (seg.size if head_offset is None else head_offset), skipped

    def _report_corrupt(
        self, path: Path, off: int, resume: int, prev_seq: int, upper: int, acked: int
    ) -> None:
        """Count and log a bad run that held (some of) the records ``prev_seq + 1 .. upper``."""
        if upper <= acked:  # everything it could have held was acknowledged: nothing lost
            log.info("spool segment %s: unreadable bytes %d..%d lie in acknowledged data", path, off, resume)
            return
        # Exact unless sequence numbers were burnt by a failed write; at least one record.
        lost = max(1, upper - max(prev_seq, acked))
        self._corrupt += lost
        log.warning(
            "spool segment %s: corrupt data at byte offset %d (%d bytes, about %d record(s)) skipped; "
            "reading resumes at byte offset %d",
            path,
            off,
            resume - off,
            lost,
            resume,
        )

    def _read_ack(self) -> int | None:
        """The stored ack position: 0 if none was stored, None if the file is unreadable."""
        path = self._dir / ACK_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SpoolError(
                f"cannot read the spool ack file {path}: {exc.strerror or exc}", path=path, errno=exc.errno
            ) from exc
        if len(data) == _ACK.size:
            magic, version, reserved, acked, crc = _ACK.unpack(data)
            if magic == ACK_MAGIC and zlib.crc32(data[: _ACK.size - _CRC.size]) == crc:
                if version != FORMAT_VERSION or reserved != 0:
                    raise SpoolCorruptError(
                        f"spool ack file {path} is of format version {version}; this WitsKit reads "
                        f"version {FORMAT_VERSION}: upgrade WitsKit to open this spool",
                        path=path,
                    )
                return int(acked)
        log.warning(
            "spool ack file %s is unreadable (%d bytes, bad magic or checksum); replaying from the oldest "
            "segment (records already committed downstream may be delivered again)",
            path,
            len(data),
        )
        return None

    # -- appending ---------------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Append one record; return its sequence number once it is durable per the fsync policy.

        Raises :class:`SpoolFullError` (``overflow="block"``) when it does not fit, and
        :class:`SpoolError` when the disk fails (nothing of this record was spooled then).
        """
        return self.append_many((payload,))[0]

    def append_many(self, payloads: Sequence[bytes]) -> list[int]:
        """Append several records with one ``write`` and at most one sync (group commit).

        Returns their sequence numbers, consecutive and in order. All or nothing: on
        :class:`SpoolFullError` or a write error none of them is spooled. (If the data was written
        but its ``fdatasync`` failed, :class:`SpoolError` says so and the records may still replay:
        delivery is at-least-once.)
        """
        blobs = [p if type(p) is bytes else _as_bytes(p, i) for i, p in enumerate(payloads)]
        if not blobs:
            return []
        largest = max(map(len, blobs))
        if largest > MAX_PAYLOAD_BYTES or largest + RECORD_HEADER_SIZE > self._max_bytes:
            i = next(i for i, b in enumerate(blobs) if len(b) == largest)
            raise UsageError(
                f"payload {i} is {largest:,} bytes: a record (with its {RECORD_HEADER_SIZE}-byte "
                f"header) must fit max_bytes ({self._max_bytes:,}) and MAX_PAYLOAD_BYTES "
                f"({MAX_PAYLOAD_BYTES:,})"
            )
        n_bytes = sum(map(len, blobs)) + RECORD_HEADER_SIZE * len(blobs)
        if n_bytes > self._max_bytes:
            raise UsageError(
                f"a batch of {len(blobs)} records needs {n_bytes:,} bytes, more than max_bytes "
                f"({self._max_bytes:,}): split it"
            )
        with self._lock:
            self._check_open()
            target = self._target_segment(n_bytes)
            self._make_room(n_bytes, target)
            first = self._next_seq
            data = _encode(blobs, first)
            if target is None:
                target = self._new_segment(first, len(blobs))
            elif self._fd is None:
                self._open_for_append(target, len(blobs))
            self._write(target, data, len(blobs))
            last = first + len(blobs) - 1
            self._next_seq = last + 1
            target.count += len(blobs)
            target.last_seq = last
            target.size += len(data)
            self._total_count += len(blobs)
            self._total_size += len(data)
            self._refused = 0
            self._dirty = True
            if self._fsync == "always":
                self._sync_point(time.monotonic())
            elif self._fsync == "interval":
                now = time.monotonic()
                if now - self._last_sync >= self._interval_s:
                    self._sync_point(now)
            return list(range(first, last + 1))

    def _target_segment(self, n_bytes: int) -> _Segment | None:
        """The segment the next write goes to, or None for a new one (sealing the current if full)."""
        if not self._segments or self._segments[-1].sealed:
            return None
        last = self._segments[-1]
        if last.size > 0 and last.size + n_bytes > self._segment_bytes:
            self._seal()
            return None
        return last

    def _make_room(self, n_bytes: int, target: _Segment | None) -> None:
        # The bound is on every segment byte on disk (size_bytes), not only the un-acked ones: the
        # acknowledged head of the oldest segment stays on disk until the whole segment is acked.
        if self._total_size + n_bytes <= self._max_bytes:
            return
        if self._overflow == "block":
            self._refused = n_bytes
            available = max(0, self._max_bytes - self._total_size)
            raise SpoolFullError(
                f"spool {self._dir} is full: {self._total_size:,} bytes on disk "
                f"({self._pending_bytes():,} un-acked) + {n_bytes:,} new would exceed max_bytes "
                f"({self._max_bytes:,}) with overflow='block'; nothing was written "
                "and nothing spooled is lost: stop reading the source and retry after ack() frees room",
                path=self._dir,
                needed=n_bytes,
                available=available,
            )
        # drop_oldest. The target is either a fresh segment or one that will hold at most
        # segment_bytes <= max_bytes after this write, so dropping older segments always suffices.
        while self._total_size + n_bytes > self._max_bytes:
            if not self._segments or self._segments[0] is target:  # pragma: no cover - see above
                raise SpoolFullError(
                    f"spool {self._dir}: cannot make room for {n_bytes:,} bytes without dropping the "
                    "segment being written",
                    path=self._dir,
                    needed=n_bytes,
                    available=max(0, self._max_bytes - self._total_size),
                )
            seg = self._segments[0]
            lost = seg.count - self._head_skipped
            self._dropped += lost
            log.warning(
                "spool %s is full (max_bytes=%d, overflow='drop_oldest'): dropped %d un-acked record(s), "
                "seqs %d..%d, with segment %s",
                self._dir,
                self._max_bytes,
                lost,
                max(seg.first_seq, self._acked + 1),
                seg.last_seq,
                seg.path.name,
            )
            self._delete_head()

    def _new_segment(self, first_seq: int, n_records: int) -> _Segment:
        path = self._dir / f"{first_seq:016d}{SEGMENT_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _O_CLOEXEC, _FILE_MODE)
        except OSError as exc:
            raise self._io_error("create spool segment", path, exc, n_records) from exc
        seg = _Segment(first_seq, path, last_seq=first_seq - 1)
        if not self._segments:
            self._head_offset = 0
            self._head_skipped = 0
        self._segments.append(seg)
        self._fd = fd
        self._dir_dirty = True
        return seg

    def _open_for_append(self, seg: _Segment, n_records: int) -> None:
        try:
            fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | _O_CLOEXEC)
            try:
                if os.fstat(fd).st_size != seg.size:  # never append after bytes the spool disowned
                    os.ftruncate(fd, seg.size)
            except OSError:
                os.close(fd)
                raise
        except OSError as exc:
            raise self._io_error("open spool segment", seg.path, exc, n_records) from exc
        self._fd = fd

    def _write(self, seg: _Segment, data: bytes, n_records: int) -> None:
        fd = self._fd
        assert fd is not None
        done = 0
        try:
            with memoryview(data) as view:
                while done < len(data):
                    n = os.write(fd, view[done:])
                    if n <= 0:  # pragma: no cover - regular files never do this
                        raise OSError(errno.EIO, "write wrote nothing")
                    done += n
        except OSError as exc:
            if done:
                try:
                    # A partial batch must not stay: later records would follow garbage.
                    os.ftruncate(fd, seg.size)
                except OSError as trunc_exc:
                    # The partial bytes stay behind. Retire the file and burn the sequence numbers
                    # they may carry, so no later record shares them; any complete record in there
                    # would replay (at-least-once), never be lost.
                    log.error(
                        "spool segment %s: cannot remove a partial write (%s); sealing the segment",
                        seg.path,
                        trunc_exc.strerror,
                    )
                    self._seal()
                    self._next_seq += n_records
            raise self._io_error("write spool segment", seg.path, exc, n_records) from exc

    def _io_error(self, action: str, path: Path, exc: OSError, n_records: int) -> SpoolError:
        what = (
            f"the {n_records} record(s) of this append were not spooled and nothing was acknowledged; "
            "records spooled before are intact"
        )
        if exc.errno in _DISK_FULL:
            message = f"disk full: cannot {action} {path} ({exc.strerror}); {what}. Free disk space and retry"
        else:
            message = f"cannot {action} {path}: {exc.strerror or exc}; {what}"
        return SpoolError(message, path=path, errno=exc.errno)

    # -- syncing -----------------------------------------------------------------------------------

    def _seal(self) -> None:
        """Stop appending to the newest segment (its data is synced at the next sync point)."""
        seg = self._segments[-1]
        seg.sealed = True
        if self._fd is not None:
            if self._dirty:
                self._unsynced_sealed.append(seg.path)
            self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        self._dirty = False
        if fd is not None:
            try:
                os.close(fd)
            except OSError as exc:  # pragma: no cover - NFS may report a late write error here
                log.warning("closing spool segment: %s", exc)

    def _sync_point(self, now: float) -> None:
        """Make everything appended so far durable: the current segment, rotated ones, the directory."""
        if self._fd is not None and self._dirty:
            seg = self._segments[-1]
            try:
                _fdatasync(self._fd)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages and cleared the
                # error, so a retry would "succeed" on lost data: never sync or write this file again.
                self._dirty = False
                self._seal()
                raise SpoolError(
                    f"{'disk full: ' if exc.errno in _DISK_FULL else ''}cannot fsync spool segment "
                    f"{seg.path}: {exc.strerror or exc}; records after seq {self._synced_seq} may not be "
                    "durable and this append was not acknowledged (they may still replay)",
                    path=seg.path,
                    errno=exc.errno,
                ) from exc
            self._dirty = False
        while self._unsynced_sealed:
            self._sync_path(self._unsynced_sealed[0])
            self._unsynced_sealed.pop(0)
        if self._dir_dirty:
            self._sync_dir()
        self._synced_seq = self._next_seq - 1
        self._last_sync = now

    def _sync_path(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:  # acked or dropped meanwhile: nothing to make durable
            return
        except OSError as exc:
            raise SpoolError(
                f"cannot open {path} to fsync it: {exc.strerror}", path=path, errno=exc.errno
            ) from exc
        try:
            _fdatasync(fd)
        except OSError as exc:
            raise SpoolError(f"cannot fsync {path}: {exc.strerror}", path=path, errno=exc.errno) from exc
        finally:
            os.close(fd)

    def _sync_dir(self) -> None:
        # A new file's directory entry is durable only once the directory itself is synced.
        assert self._dir_fd is not None
        try:
            os.fsync(self._dir_fd)
        except OSError as exc:
            raise SpoolError(
                f"cannot fsync the spool directory {self._dir}: {exc.strerror}",
                path=self._dir,
                errno=exc.errno,
            ) from exc
        self._dir_dirty = False

    def sync(self) -> None:
        """``fdatasync`` everything appended so far now, whatever the policy."""
        with self._lock:
            self._check_open()
            self._sync_point(time.monotonic())

    # -- reading -----------------------------------------------------------------------------------

    def pending(self, after: int | None = None, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, payload)`` of un-acked records, oldest first.

        ``after`` skips sequence numbers up to and including it (a replay loop passes the last seq
        it has handed downstream); ``limit`` caps how many are yielded. Reading does not consume:
        without an ``ack`` the same records come again. The set of records is fixed when
        ``pending()`` is called; records appended later need another call. Records acked or
        dropped while iterating may still be yielded if they were already being read, or are
        skipped otherwise.
        """
        if after is not None:
            _check_int("after", after, 0)
        if limit is not None:
            _check_int("limit", limit, 0)
        with self._lock:
            self._check_open()
            floor = self._acked if after is None else max(after, self._acked)
            plan = self._read_plan(floor)
        return self._read(plan, floor, limit)

    def _read_plan(self, floor: int) -> list[tuple[_Segment, int, int, dict[int, int]]]:
        segs = self._segments
        if not segs:
            return []
        start_index, start_offset = 0, self._head_offset
        hint = self._hint
        if floor > self._acked:
            firsts = [s.first_seq for s in segs]
            i = -1
            if hint is not None and hint[0] == floor:
                i = bisect.bisect_left(firsts, hint[1])
                if i < len(segs) and firsts[i] == hint[1]:
                    start_offset = max(hint[2], self._head_offset) if i == 0 else hint[2]
                else:
                    i = -1
            if i < 0:
                # The segment that may hold floor + 1: the last one starting at or before it.
                i = max(0, bisect.bisect_right(firsts, floor + 1) - 1)
                start_offset = self._head_offset if i == 0 else 0
            start_index = i
        return [
            (seg, start_offset if j == start_index else 0, seg.size, dict(seg.bad))
            for j, seg in enumerate(segs[start_index:], start_index)
        ]

    def _read(
        self, plan: list[tuple[_Segment, int, int, dict[int, int]]], floor: int, limit: int | None
    ) -> Iterator[tuple[int, bytes]]:
        if limit == 0:
            return
        yielded = 0
        for seg, start, end, bad in plan:
            if start >= end:
                continue
            try:
                with _mapped(seg.path, end) as (buf, n):
                    for kind, off, seq, stop, payload in _scan(buf, start, n, seg.first_seq - 1, seg.path):
                        if kind == _BAD:  # (seq is the resume offset here)
                            if bad.get(off) != seq:
                                self._note_bad(seg, off, seq)
                            continue
                        if seq <= floor:
                            continue
                        # A plain attribute store (atomic): taking the lock here could deadlock if
                        # the generator is finalised inside a locked section.
                        self._hint = (seq, seg.first_seq, stop)
                        yield seq, payload
                        yielded += 1
                        if limit is not None and yielded >= limit:
                            return
            except OSError as exc:
                raise SpoolError(
                    f"cannot read spool segment {seg.path}: {exc.strerror or exc}",
                    path=seg.path,
                    errno=exc.errno,
                ) from exc

    def _note_bad(self, seg: _Segment, off: int, resume: int) -> None:
        # Found while reading, so it appeared after open (the disk is failing): log once per run.
        log.warning(
            "spool segment %s: corrupt data at byte offset %d (%d bytes) found while reading; skipped",
            seg.path,
            off,
            resume - off,
        )
        with self._lock:
            seg.bad[off] = resume

    # -- acknowledging -----------------------------------------------------------------------------

    def ack(self, seq: int) -> None:
        """Record that every record up to ``seq`` is committed downstream.

        The position is stored atomically (temporary file, ``fsync``, rename, directory ``fsync``)
        before segments it fully covers are deleted, so a crash in between only leaves files the
        next open deletes. Acking a position at or below the current one is a no-op; acking past
        :attr:`last_seq` is a :class:`~witskit.errors.UsageError`.
        """
        _check_int("seq", seq, 0)
        with self._lock:
            self._check_open()
            if seq > self._next_seq - 1:
                raise UsageError(f"cannot ack seq {seq}: the last appended record is {self._next_seq - 1}")
            if seq <= self._acked:
                return
            self._store_ack(seq)
            self._acked = seq
            while self._segments:
                upper = (
                    self._segments[1].first_seq - 1 if len(self._segments) > 1 else self._segments[0].last_seq
                )
                if upper > seq:
                    break
                self._delete_head()
            if self._segments:
                self._advance_head()

    def _store_ack(self, seq: int) -> None:
        tmp = self._dir / ACK_TMP_FILE
        head = _ACK.pack(ACK_MAGIC, FORMAT_VERSION, 0, seq, 0)[: _ACK.size - _CRC.size]
        data = head + _CRC.pack(zlib.crc32(head))
        durable = self._fsync != "never"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, _FILE_MODE)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.EIO, "short write of the ack file")
                if durable:
                    _fdatasync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._dir / ACK_FILE)
            if durable:
                assert self._dir_fd is not None
                os.fsync(self._dir_fd)
        except OSError as exc:
            if exc.errno in _DISK_FULL and self._overwrite_ack(data, durable):
                # Stored in place: the deletions this ack allows are what frees the disk.
                self._unlink(tmp)
                return
            full = "disk full: " if exc.errno in _DISK_FULL else ""
            raise SpoolError(
                f"{full}cannot store the ack position in {self._dir / ACK_FILE}: {exc.strerror or exc}; "
                f"the ack of seq {seq} was not recorded (those records stay pending and will replay)",
                path=self._dir / ACK_FILE,
                errno=exc.errno,
            ) from exc

    def _overwrite_ack(self, data: bytes, durable: bool) -> bool:
        """Store the ack by rewriting the existing ``ack`` file in place; False if that fails too.

        On a full disk the usual way (a new file renamed over the old) cannot get a block, and
        without a stored ack no segment may be deleted: the spool would stay full for good. The
        existing file's block needs no new space. A 20-byte write within one sector is not torn in
        practice; if it were, its CRC fails and open replays from the oldest segment (at least
        once, never lost).
        """
        try:
            fd = os.open(self._dir / ACK_FILE, os.O_WRONLY | _O_CLOEXEC)
        except OSError:
            return False
        try:
            if os.pwrite(fd, data, 0) != len(data):
                return False
            if durable:
                _fdatasync(fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        now = time.monotonic()
        if self._in_place_said is None or now - self._in_place_said >= _REMIND_IN_PLACE:
            # Once, then every so often: a line per commit buried the "cannot write" line.
            self._in_place_said = now
            log.warning("disk full: stored the spool ack position in place in %s", self._dir / ACK_FILE)
        return True

    def _delete_head(self) -> None:
        seg = self._segments.pop(0)
        if not self._segments:
            self._close_fd()  # it was the segment being written
        self._total_size -= seg.size
        self._total_count -= seg.count
        self._head_offset = 0
        self._head_skipped = 0
        if seg.path in self._unsynced_sealed:
            self._unsynced_sealed.remove(seg.path)
        self._unlink(seg.path)

    def _advance_head(self) -> None:
        """Move the head past acked records of the oldest segment (reading from where it was)."""
        head = self._segments[0]
        if self._head_offset >= head.size:
            return
        try:
            with _mapped(head.path, head.size) as (buf, n):
                for kind, off, seq, _stop, _ in _scan(
                    buf, self._head_offset, n, head.first_seq - 1, head.path
                ):
                    if kind == _REC:
                        if seq > self._acked:
                            self._head_offset = off
                            return
                        self._head_skipped += 1
                self._head_offset = head.size
        except OSError as exc:
            # The ack is stored; only this process's bookkeeping of the head lags (pending() still
            # filters by the ack position).
            raise SpoolError(
                f"cannot read spool segment {head.path}: {exc.strerror or exc}",
                path=head.path,
                errno=exc.errno,
            ) from exc

    def _unlink(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The ack is stored, so the next open deletes it; only disk space is at stake.
            log.warning("cannot delete spool file %s: %s", path, exc.strerror)

    # -- room --------------------------------------------------------------------------------------

    def _pending_bytes(self) -> int:
        return self._total_size - self._head_offset

    def has_room(self, n_bytes: int, records: int = 1) -> bool:
        """Whether ``records`` records with ``n_bytes`` of payload in all fit without refusing or dropping."""
        _check_int("n_bytes", n_bytes, 0)
        _check_int("records", records, 0)
        with self._lock:
            return self._total_size + n_bytes + records * RECORD_HEADER_SIZE <= self._max_bytes

    @property
    def is_full(self) -> bool:
        """True while the segment files fill ``max_bytes``, or the last refused append still does not fit.

        With ``overflow="block"`` this turns True when an append is refused and back to False once
        acks have freed room for it (or a smaller append succeeded): the signal to pause the source.
        """
        with self._lock:
            used = self._total_size
            if self._refused:
                return used + self._refused > self._max_bytes
            return used >= self._max_bytes

    # -- life cycle --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self._dir} is closed", path=self._dir)

    def close(self) -> None:
        """Sync (unless the policy is ``"never"``), close the files and release the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fsync != "never":
                    self._sync_point(time.monotonic())
            finally:
                self._release()

    def _release(self) -> None:
        self._close_fd()
        dir_fd, self._dir_fd = self._dir_fd, None
        lock_fd, self._lock_fd = self._lock_fd, None
        if dir_fd is not None:
            os.close(dir_fd)
        if lock_fd is not None:
            os.close(lock_fd)  # releases the flock
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"last_seq={self._next_seq - 1}, acked_seq={self._acked}"
        return f"Spool({str(self._dir)!r}, fsync={self._fsync!r}, {state})"

    # -- introspection -----------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The spool directory."""
        return self._dir

    @property
    def fsync(self) -> str:
        """The fsync policy: ``"always"``, ``"interval"`` or ``"never"``."""
        return self._fsync

    @property
    def fsync_interval_ms(self) -> int:
        """With ``fsync="interval"``, the longest time an appended record stays unsynced."""
        return self._interval_ms

    @property
    def segment_bytes(self) -> int:
        """The size at which segments rotate (the unit of deletion after ack and of drop_oldest)."""
        return self._segment_bytes

    @property
    def overflow(self) -> str:
        """What an append that does not fit does: ``"block"`` (refuse) or ``"drop_oldest"``."""
        return self._overflow

    @property
    def max_bytes(self) -> int:
        """The bound on the spool's segment files on disk (:attr:`size_bytes`), headers included."""
        return self._max_bytes

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest record (0 before the first append ever)."""
        with self._lock:
            return self._next_seq - 1

    @property
    def acked_seq(self) -> int:
        """Everything up to this sequence number is acknowledged (0: nothing yet)."""
        with self._lock:
            return self._acked

    @property
    def synced_seq(self) -> int:
        """Un-acked records up to this seq have been ``fdatasync``-ed: they survive a power cut."""
        with self._lock:
            return self._synced_seq

    @property
    def pending_count(self) -> int:
        """How many un-acked records :meth:`pending` would yield."""
        with self._lock:
            return self._total_count - self._head_skipped

    @property
    def pending_bytes(self) -> int:
        """Bytes of un-acked records (headers included): the quantity ``max_bytes`` bounds."""
        with self._lock:
            return self._pending_bytes()

    @property
    def size_bytes(self) -> int:
        """Bytes of records in the segment files: :attr:`pending_bytes` plus the acked head of the oldest."""
        with self._lock:
            return self._total_size

    @property
    def segment_count(self) -> int:
        """How many segment files the spool has."""
        with self._lock:
            return len(self._segments)

    @property
    def dropped_records(self) -> int:
        """Un-acked records deleted by ``overflow="drop_oldest"`` since this Spool was opened."""
        with self._lock:
            return self._dropped

    @property
    def torn_records_skipped(self) -> int:
        """Partial records cut from the end of the newest segment on open (left by a crash)."""
        with self._lock:
            return self._torn

    @property
    def corrupt_records_skipped(self) -> int:
        """Un-acked records lost to corruption found on open (estimated from the sequence gap)."""
        with self._lock:
            return self._corrupt
