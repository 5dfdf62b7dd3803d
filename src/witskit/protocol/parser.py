"""The streaming, sans-I/O WITS Level 0 frame parser, and the frame it makes.

Bytes go in with :meth:`FrameParser.feed` in any chunking; complete :class:`WITSFrame` objects and
:class:`~witskit.errors.FrameError` events come out, in stream order. :meth:`FrameParser.close` ends
the stream. The parser does no I/O, so every transport (TCP, TLS, serial, file, MQTT) is a short loop
around it.

Rules, from the spec and from real feeds:

* A frame is ``&&``, data lines, ``!!``. Lines may end in CRLF, LF or CR; blank lines and whitespace
  around lines are ignored. Data on the ``&&`` line (``&&0108123.4``) and before ``!!`` on its line
  are kept: ``&&`` and ``!!`` are reserved sequences and a WITS value cannot contain them.
* Bytes outside a frame are garbage: one FrameError per run, then the parser resynchronises on the
  next ``&&``. A ``!!`` outside a frame is garbage too, never an empty frame. A UTF-8 byte-order
  mark at the very start of the stream (Windows tools write one) is skipped silently.
* A frame cut short by a new ``&&`` is a FrameError, and the new frame starts.
* A line of more than ``max_line_length`` bytes is a FrameError naming that line; its bytes are
  skipped as they arrive (never buffered) up to its end, and the rest of the frame is kept.
* Limits (see :mod:`witskit.protocol.limits`) bound memory; exceeding one is a FrameError and a
  resync. The buffer remembers how far it has searched, so a peer that sends one byte at a time
  costs linear time.
* Receive times (``WITSFrame.timestamp``) strictly increase, by at least a microsecond per frame,
  so they order the frames of a parser as received even when many arrive in one read or the rig
  sends several frames with the same DATE/TIME second (the store breaks ties by them).

:class:`WITSFrame` is defined here, with the parser that makes it: the witskit 0.1 constructor
``WITSFrame(raw_data=...)`` checks its text by running this parser over it, so a frame built by
hand and one received are held to the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from witskit.errors import FrameError, UsageError
from witskit.protocol.limits import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_GARBAGE_BYTES,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES_PER_FRAME,
    EXCERPT_BYTES,
)

__all__ = ["FrameEvent", "FrameParser", "WITSFrame", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class WITSFrame:
    """One raw frame, as received (immutable).

    Frames normally come out of :class:`~witskit.protocol.FrameParser`, which fills every field.
    Constructing one by hand, as in witskit 0.1 (``WITSFrame(raw_data="&&\\n01083650.40\\n!!")``),
    checks the text with the same parser and raises :class:`ValueError` (a
    :class:`~witskit.errors.FrameError`) naming what is wrong.

    ``lines`` holds the data lines as bytes, stripped, without blank lines; ``timestamp`` is when the
    frame was received (UTC); ``offset`` and ``line`` locate its ``&&`` in the stream; ``sequence``
    counts frames from 0 per parser.
    """

    __slots__ = ("line", "lines", "offset", "raw", "sequence", "source", "timestamp")

    raw: bytes
    source: str | None
    timestamp: datetime
    lines: tuple[bytes, ...]
    offset: int
    line: int
    sequence: int

    def __init__(
        self,
        raw_data: str,
        source: str | None = None,
        timestamp: datetime | None = None,
        lines: tuple[bytes, ...] = (),
        offset: int = 0,
        line: int = 1,
        sequence: int = 0,
    ) -> None:
        if not isinstance(raw_data, str):
            raise UsageError(f"raw_data must be str, not {type(raw_data).__name__}")
        if not lines:
            lines = self._check(raw_data, source)
        setter = object.__setattr__
        setter(self, "raw", raw_data.encode("latin-1", "replace"))
        setter(self, "source", source)
        setter(self, "timestamp", timestamp if timestamp is not None else utc_now())
        setter(self, "lines", tuple(lines))
        setter(self, "offset", offset)
        setter(self, "line", line)
        setter(self, "sequence", sequence)

    @staticmethod
    def _check(raw_data: str, source: str | None) -> tuple[bytes, ...]:
        parser = FrameParser(source=source)
        events = parser.feed(raw_data.encode("latin-1", "replace"))
        events += parser.close()
        frames: list[WITSFrame] = []
        for event in events:
            if not isinstance(event, WITSFrame):
                raise event
            frames.append(event)
        if len(frames) != 1:
            raise UsageError(
                f"raw_data holds {len(frames)} frames, not one; split it with split_multiple_frames()"
            )
        return frames[0].lines

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"WITSFrame is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"WITSFrame is immutable; cannot delete {name!r}")

    def _key(self) -> tuple[object, ...]:
        return (self.raw, self.source, self.timestamp, self.lines, self.offset, self.line, self.sequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WITSFrame):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"WITSFrame(source={self.source!r}, offset={self.offset}, line={self.line}, "
            f"sequence={self.sequence}, lines={self.lines!r})"
        )

    @classmethod
    def _trusted(
        cls,
        raw: bytes,
        lines: tuple[bytes, ...],
        source: str | None,
        timestamp: datetime,
        offset: int,
        line: int,
        sequence: int,
    ) -> WITSFrame:
        """Build a frame the parser has already checked (skips the re-parse; hot path)."""
        self = object.__new__(cls)
        setter = object.__setattr__
        setter(self, "raw", raw)
        setter(self, "source", source)
        setter(self, "timestamp", timestamp)
        setter(self, "lines", lines)
        setter(self, "offset", offset)
        setter(self, "line", line)
        setter(self, "sequence", sequence)
        return self

    @property
    def raw_data(self) -> str:
        """The frame as text, exactly as received (``&&`` to ``!!``)."""
        return self.raw.decode("latin-1")

    @property
    def data_lines(self) -> list[str]:
        """The data lines as text (without the ``&&`` and ``!!`` markers)."""
        return [ln.decode("latin-1") for ln in self.lines]

    @property
    def records(self) -> list[int]:
        """The record numbers present, in order of first appearance."""
        seen: dict[int, None] = {}
        for ln in self.lines:
            head = ln[:2]
            if head.isdigit():
                seen.setdefault(int(head), None)
        return list(seen)

    @staticmethod
    def parse_data_line(line: str) -> tuple[str, str]:
        """Split a data line into its 4-digit code and its value text.

        Raises :class:`ValueError` when the line does not start with 4 digits.
        """
        text = line.strip()
        code = text[:4]
        if len(code) < 4 or not (code.isascii() and code.isdigit()):
            raise ValueError(f"invalid WITS data line {line!r}: it must start with a 4-digit code")
        return code, text[4:].strip()


#: What :meth:`FrameParser.feed` returns a list of.
FrameEvent = WITSFrame | FrameError

_START = b"&&"
_END = b"!!"
_BOM = b"\xef\xbb\xbf"
_ONE_US = timedelta(microseconds=1)


class FrameParser:
    """Incremental WITS frame parser (sans-I/O).

    >>> p = FrameParser(source="rig-7")
    >>> events = p.feed(b"&&\\r\\n01083650.40\\r\\n!!\\r\\n")
    >>> events[0].lines
    (b'01083650.40',)
    """

    def __init__(
        self,
        source: str | None = None,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines_per_frame: int = DEFAULT_MAX_LINES_PER_FRAME,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_garbage_bytes: int = DEFAULT_MAX_GARBAGE_BYTES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        for name, value in (
            ("max_line_length", max_line_length),
            ("max_lines_per_frame", max_lines_per_frame),
            ("max_frame_bytes", max_frame_bytes),
            ("max_garbage_bytes", max_garbage_bytes),
        ):
            if value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        self.source = source
        self.max_line_length = max_line_length
        self.max_lines_per_frame = max_lines_per_frame
        self.max_frame_bytes = max_frame_bytes
        self.max_garbage_bytes = max_garbage_bytes
        self._clock = clock

        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0  # first byte of _buf not yet consumed
        self._scan = 0  # where the next marker search resumes (linear time for trickled input)
        self._in_frame = False
        self._frame_start = 0  # index in _buf of the current frame's '&&'
        self._frame_offset = 0  # stream offset and line of the current frame's '&&'
        self._frame_line = 1
        self._line_start = 0  # index in _buf of the first line of the frame not yet checked for length
        self._skipping_line = False  # inside a line over max_line_length: its bytes are dropped
        self._removed = 0  # bytes of over-long lines cut out of _buf (offsets after the cut shift)
        self._removed_at = -1  # index in _buf of the first cut, -1 when none
        self._discarding = False  # skipping the tail of a frame already reported as too large
        self._garbage_offset = -1  # stream offset where the pending run of garbage starts
        self._garbage_line = 0
        self._garbage_bytes = 0
        self._garbage_excerpt = b""
        self._garbage_has_end = False
        self._garbage_tail = b""  # last byte of the previous garbage region (a '!!' may straddle feeds)
        self._newline = b"\n"
        self._line_pos = 0  # index in _buf up to which newlines have been counted
        self._line_count = 0  # newlines before _line_pos
        self._sequence = 0
        self._closed = False
        self._now: datetime | None = None
        self._last_time: datetime | None = None  # receive time of the last frame (they increase)
        self._at_start = True  # a byte-order mark may still come (only the stream's first bytes)

    # Public API ---------------------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """How many bytes have been fed so far."""
        return self._base + self._removed + len(self._buf)

    @property
    def frames_parsed(self) -> int:
        """How many frames this parser has produced."""
        return self._sequence

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not yet ended (useful to tell a clean disconnect)."""
        return self._in_frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[FrameEvent]:
        """Add bytes; return the frames and errors they complete, in stream order."""
        if self._closed:
            raise UsageError("feed() called after close(); create a new FrameParser")
        if not data:
            return []
        self._buf += data
        self._now = None
        if self._at_start and not self._skip_bom():
            return []
        events: list[FrameEvent] = []
        self._run(events)
        self._compact()
        return events

    def close(self) -> list[FrameEvent]:
        """End of stream: report a pending partial frame or garbage; the parser is then done."""
        if self._closed:
            return []
        self._closed = True
        events: list[FrameEvent] = []
        buf = self._buf
        if self._in_frame:
            self._check_lines(len(buf), events)
            events.append(
                self._frame_error(
                    "stream ended inside a frame (no '!!' after '&&')", buf[self._frame_start :], "truncated"
                )
            )
        else:
            self._note_garbage(self._pos, len(buf), events)
        self._flush_garbage(events)
        self._base += self._removed + len(buf)
        self._removed, self._removed_at = 0, -1
        self._buf = bytearray()
        self._pos = self._scan = self._line_pos = self._frame_start = 0
        self._in_frame = False
        return events

    def _skip_bom(self) -> bool:
        """Step over a UTF-8 byte-order mark at the start of the stream; False while undecided."""
        buf = self._buf
        if len(buf) < len(_BOM) and _BOM.startswith(buf):
            return False  # maybe the first bytes of a BOM: wait for more
        self._at_start = False
        if buf.startswith(_BOM):
            self._pos = self._scan = len(_BOM)
        return True

    # The state machine --------------------------------------------------------------------------
    def _run(self, events: list[FrameEvent]) -> None:
        buf = self._buf
        while True:
            if not self._in_frame:
                start = buf.find(_START, self._scan)
                if start < 0:
                    # Everything but a trailing '&' (maybe half of '&&') is garbage.
                    end = len(buf) - 1 if buf.endswith(b"&") else len(buf)
                    if end > self._pos:
                        self._note_garbage(self._pos, end, events)
                        self._pos = end
                    self._scan = end
                    return
                if start > self._pos:
                    gap = buf[self._pos : start]
                    # Usually just the CRLF after '!!'; inside a garbage run it counts as garbage.
                    if not gap.isspace() or self._discarding or self._garbage_offset >= 0:
                        self._note_garbage(self._pos, start, events)
                if self._garbage_offset >= 0:
                    self._flush_garbage(events)
                self._discarding = False
                self._in_frame = True
                self._start_frame(start)

            start = self._frame_start
            end = buf.find(_END, self._scan)
            nxt = buf.find(_START, self._scan, end if end >= 0 else len(buf))
            # Lines up to the first marker (or all but the last byte, maybe half of one) must fit.
            stop = nxt if nxt >= 0 else end if end >= 0 else len(buf) - 1
            if stop - self._line_start > self.max_line_length or self._skipping_line:
                cut = self._check_lines(stop, events)
                if cut:
                    end -= cut if end >= 0 else 0
                    nxt -= cut if nxt >= 0 else 0
            if nxt >= 0:
                events.append(
                    self._frame_error("frame cut short by a new '&&' before its '!!'", buf[start:nxt], "cut")
                )
                self._start_frame(nxt)
                continue
            if end < 0:
                if len(buf) - start > self.max_frame_bytes:
                    self._drop_oversized(start, events)
                    continue
                # Resume one byte back: the last byte may be the first half of '!!' or '&&'.
                self._scan = max(self._scan, len(buf) - 1)
                return
            self._in_frame = False
            self._skipping_line = False
            self._pos = self._scan = end + 2
            self._complete(start, end, events)

    def _start_frame(self, start: int) -> None:
        self._frame_start = self._pos = start
        self._scan = self._line_start = start + 2
        self._skipping_line = False
        self._frame_offset = self._offset(start)
        self._frame_line = self._line_at(start)

    def _check_lines(self, stop: int, events: list[FrameEvent]) -> int:
        """Report and cut out every line of the frame, up to ``stop``, longer than max_line_length.

        Lines are checked once: ``_line_start`` moves past the ones that fit, up to
        ``max_line_length`` bytes per ``rfind``, so a long frame costs a few searches. A line with
        no end within the limit is reported at once, then its bytes are cut out of the buffer up
        to its end, now or as they arrive. Returns how many bytes were cut (indexes after ``stop``
        shift down by that much).
        """
        buf = self._buf
        limit = self.max_line_length
        lc = self._line_start
        cut = 0
        while True:
            if self._skipping_line:
                if lc >= stop:
                    break
                ends = [i for i in (buf.find(b"\n", lc, stop), buf.find(b"\r", lc, stop)) if i >= 0]
                upto = min(ends) if ends else stop
                n = upto - lc
                if n:
                    del buf[lc:upto]
                    cut += n
                    stop -= n
                    self._removed += n
                    if self._removed_at < 0:
                        self._removed_at = lc
                    self._scan = lc if self._scan < upto else self._scan - n
                if not ends:
                    break
                self._skipping_line = False
                continue
            if stop - lc <= limit:
                break
            window = lc + limit + 1  # a line that fits ends (CR or LF) within this many bytes
            last = max(buf.rfind(b"\n", lc, window), buf.rfind(b"\r", lc, window))
            if last >= 0:
                lc = last + 1
                continue
            events.append(
                FrameError(
                    f"line longer than max_line_length={limit} bytes: skipped to its end, "
                    "the rest of the frame is kept",
                    source=self.source,
                    offset=self._offset(lc),
                    line=self._line_at(lc),
                    # Only the bytes every chunking has seen at this point: the same error however fed.
                    excerpt=bytes(buf[lc : lc + min(EXCERPT_BYTES, limit + 1)]),
                    kind="line",
                )
            )
            self._skipping_line = True
        self._line_start = lc
        return cut

    def _complete(self, start: int, end: int, events: list[FrameEvent]) -> None:
        buf = self._buf
        raw = bytes(buf[start : end + 2])
        size = len(raw)
        if size > self.max_frame_bytes:
            events.append(
                self._frame_error(
                    f"frame of {size} bytes exceeds max_frame_bytes={self.max_frame_bytes}", raw, "limit"
                )
            )
            return
        body = raw[2:-2]
        lines = body.splitlines()
        if lines and not lines[0]:
            del lines[0]  # the end of the '&&' line
        if b" " in body or b"\t" in body or b"\x0b" in body or b"\x0c" in body:
            lines = [s for s in (ln.strip() for ln in lines) if s]
        elif b"" in lines:
            lines = [ln for ln in lines if ln]
        if not lines:
            events.append(self._frame_error("empty frame: no data lines between '&&' and '!!'", raw, "empty"))
            return
        if len(lines) > self.max_lines_per_frame:
            events.append(
                self._frame_error(
                    f"frame has {len(lines)} lines, over max_lines_per_frame={self.max_lines_per_frame}",
                    raw,
                    "limit",
                )
            )
            return
        # Lines over max_line_length were reported and cut out as they arrived (_check_lines).
        if self._newline == b"\n" and b"\n" not in body and b"\r" in body:
            self._newline = b"\r"  # a CR-only feed (old serial units): count CRs as lines
        now = self._now
        if now is None:
            now = self._clock()
            last = self._last_time
            if last is not None and now <= last:
                now = last + _ONE_US  # a clock that stood still (or stepped back) since the last read
        else:
            now += _ONE_US  # frames of one read: received in this order
        self._now = self._last_time = now
        events.append(
            WITSFrame._trusted(
                raw,
                tuple(lines),
                self.source,
                now,
                self._frame_offset,
                self._frame_line,
                self._sequence,
            )
        )
        self._sequence += 1

    def _drop_oversized(self, start: int, events: list[FrameEvent]) -> None:
        buf = self._buf
        events.append(
            self._frame_error(
                f"frame exceeds max_frame_bytes={self.max_frame_bytes} without an '!!'; "
                "skipped to the next '&&'",
                buf[start : start + EXCERPT_BYTES],
                "limit",
            )
        )
        self._in_frame = False
        self._skipping_line = False
        self._discarding = True
        # The rest of this frame is not reported again as garbage; scanning resumes after it.
        self._pos = self._scan = len(buf) - 1 if buf.endswith(b"&") else len(buf)

    # Garbage ------------------------------------------------------------------------------------
    def _note_garbage(self, start: int, end: int, events: list[FrameEvent]) -> None:
        region = self._buf[start:end]
        if self._discarding:
            # Bytes of a frame already reported as too large: its '!!' ends the skip.
            mark = region.find(_END)
            if mark < 0:
                return
            self._discarding = False
            start += mark + 2
            region = region[mark + 2 :]
        stripped = region.strip()
        if not stripped and self._garbage_offset < 0:
            return  # whitespace between frames; inside a run it is part of the run (any chunking)
        if self._garbage_offset < 0:
            lead = len(region) - len(region.lstrip())
            self._garbage_offset = self._offset(start + lead)
            self._garbage_line = self._line_at(start + lead)
            self._garbage_excerpt = bytes(stripped[:EXCERPT_BYTES])
        elif len(self._garbage_excerpt) < EXCERPT_BYTES:
            self._garbage_excerpt += bytes(region[: EXCERPT_BYTES - len(self._garbage_excerpt)])
        self._garbage_bytes += len(region)
        if _END in self._garbage_tail + region[:1] or _END in region:
            self._garbage_has_end = True
        self._garbage_tail = bytes(region[-1:])
        if self._garbage_bytes >= self.max_garbage_bytes:
            self._flush_garbage(events, limit=True)

    def _flush_garbage(self, events: list[FrameEvent], *, limit: bool = False) -> None:
        if self._garbage_offset < 0:
            return
        if limit:
            reason = (
                f"{self._garbage_bytes} bytes outside any frame (reported every "
                f"max_garbage_bytes={self.max_garbage_bytes}); skipping to the next '&&'"
            )
        elif self._garbage_has_end:
            reason = f"'!!' outside a frame: {self._garbage_bytes} bytes with no '&&' before them"
        else:
            reason = f"{self._garbage_bytes} bytes of garbage outside any frame"
        events.append(
            FrameError(
                reason,
                source=self.source,
                offset=self._garbage_offset,
                line=self._garbage_line,
                excerpt=self._garbage_excerpt.strip(),
                kind="garbage",
            )
        )
        self._garbage_offset = -1
        self._garbage_bytes = 0
        self._garbage_excerpt = b""
        self._garbage_has_end = False
        self._garbage_tail = b""

    # Bookkeeping --------------------------------------------------------------------------------
    def _frame_error(self, reason: str, excerpt: bytes | bytearray, kind: str) -> FrameError:
        """An error about the current frame, located at its '&&'."""
        return FrameError(
            reason,
            source=self.source,
            offset=self._frame_offset,
            line=self._frame_line,
            excerpt=bytes(excerpt[:EXCERPT_BYTES]),
            kind=kind,
        )

    def _offset(self, index: int) -> int:
        """Stream offset of ``_buf[index]``, for an index after any cut (or when there is none)."""
        return self._base + self._removed + index

    def _line_at(self, index: int) -> int:
        """1-based line number of ``_buf[index]``; indexes are asked for in increasing order."""
        if index > self._line_pos:
            self._line_count += self._buf.count(self._newline, self._line_pos, index)
            self._line_pos = index
        return self._line_count + 1

    def _compact(self) -> None:
        """Drop consumed bytes once per feed (not per frame, which would be quadratic)."""
        keep = self._frame_start if self._in_frame else self._pos
        if keep == 0:
            return
        self._line_at(keep)
        del self._buf[:keep]
        self._base += keep
        if self._removed_at >= 0:
            if keep > self._removed_at:  # the cuts are in the bytes dropped: offsets are plain again
                self._base += self._removed
                self._removed, self._removed_at = 0, -1
            else:
                self._removed_at -= keep
        self._pos -= keep
        self._scan -= keep
        self._line_pos -= keep
        self._frame_start = max(0, self._frame_start - keep)
        self._line_start = max(0, self._line_start - keep)
