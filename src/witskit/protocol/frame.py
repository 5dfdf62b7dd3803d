"""The raw WITS frame: what came between one ``&&`` and the next ``!!``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from witskit.errors import UsageError

__all__ = ["WITSFrame", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WITSFrame:
    """One raw frame, as received.

    Frames normally come out of :class:`~witskit.protocol.FrameParser`, which fills every field.
    Constructing one by hand, as in witskit 0.1 (``WITSFrame(raw_data="&&\\n01083650.40\\n!!")``),
    checks the text with the same parser and raises :class:`ValueError` (a
    :class:`~witskit.errors.FrameError`) naming what is wrong.

    ``lines`` holds the data lines as bytes, stripped, without blank lines; ``timestamp`` is when the
    frame was received (UTC); ``offset`` and ``line`` locate its ``&&`` in the stream; ``sequence``
    counts frames from 0 per parser.
    """

    raw_data: str
    source: str | None = None
    timestamp: datetime = field(default_factory=utc_now)
    lines: tuple[bytes, ...] = ()
    offset: int = 0
    line: int = 1
    sequence: int = 0

    def __post_init__(self) -> None:
        if self.lines:
            return
        from witskit.protocol.parser import FrameParser  # the parser imports this module

        raw = self.raw_data
        if not isinstance(raw, str):
            raise UsageError(f"raw_data must be str, not {type(raw).__name__}")
        parser = FrameParser(source=self.source)
        events = parser.feed(raw.encode("latin-1", "replace"))
        events += parser.close()
        for event in events:
            if not isinstance(event, WITSFrame):
                raise event
        if len(events) != 1:
            raise UsageError(
                f"raw_data holds {len(events)} frames, not one; split it with split_multiple_frames()"
            )
        object.__setattr__(self, "lines", events[0].lines)

    @classmethod
    def _trusted(
        cls,
        raw_data: str,
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
        setter(self, "raw_data", raw_data)
        setter(self, "source", source)
        setter(self, "timestamp", timestamp)
        setter(self, "lines", lines)
        setter(self, "offset", offset)
        setter(self, "line", line)
        setter(self, "sequence", sequence)
        return self

    @property
    def raw(self) -> bytes:
        """The frame's bytes as received."""
        return self.raw_data.encode("latin-1", "replace")

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
