"""The raw WITS frame: what came between one ``&&`` and the next ``!!``."""

from __future__ import annotations

from datetime import UTC, datetime

from witskit.errors import UsageError

__all__ = ["WITSFrame", "utc_now"]


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
        from witskit.protocol.parser import FrameParser  # the parser imports this module

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
