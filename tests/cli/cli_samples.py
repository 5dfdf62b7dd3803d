"""Sample WITS inputs for the CLI tests (a helper module, not a test file)."""

from __future__ import annotations

from datetime import UTC, datetime

from witskit.simulator import DrillingSimulator

START = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def simulated(frames: int = 10, *, records: tuple[int, ...] = (1, 2, 8), seed: int = 3) -> bytes:
    """A deterministic simulated stream."""
    return b"".join(DrillingSimulator(seed, start=START, records=records).frames(frames))


def frame_of(*lines: str, eol: str = "\r\n") -> bytes:
    return ("&&" + eol + eol.join(lines) + eol + "!!" + eol).encode("latin-1")


GOOD_1 = frame_of("0101RIG-7", "0105240501", "0106120000", "01083650.40", "011323.38")
GOOD_2 = frame_of("0101RIG-7", "0105240501", "0106120001", "01083650.50", "011324.10")
# An unknown code (9999) on its data line, inside an otherwise good frame.
UNKNOWN = frame_of("0101RIG-7", "0105240501", "0106120002", "9999123.4", "01083650.60")

#: GOOD_1 (lines 1-7), two lines of garbage (8-9), UNKNOWN (lines 10-16, 9999 on line 14), GOOD_2.
BAD_FILE = GOOD_1 + b"garbage here\r\nmore garbage\r\n" + UNKNOWN + GOOD_2
GARBAGE_LINE = 8
UNKNOWN_LINE = 14
