"""The plan's strict validation names, as thin wrappers over the protocol's one frame check.

A frame from outside (HTTP uploads, untrusted peers) is checked by
:func:`witskit.protocol.check_wits_frame` with ``untrusted=True``: the parser and decoder of
``witskit validate`` (so text items such as ``1984PASON/EDR`` and known vendor header lines such as
``EDR PASON`` pass, and numeric items must hold numbers), plus the untrusted-input limits named in
:mod:`witskit.protocol.limits` (size, printable ASCII). Problems raise ``ValueError`` naming the line.
"""

from __future__ import annotations

from datetime import datetime

from witskit.protocol import DecodedFrame, WITSDecoder, WITSFrame, check_wits_frame
from witskit.protocol.limits import UNTRUSTED_MAX_FRAME_BYTES

__all__ = ["MAX_FRAME_BYTES", "SecureWITSDecoder", "SecureWITSFrame", "validate_frame_text"]

#: The plan's name for :data:`witskit.protocol.limits.UNTRUSTED_MAX_FRAME_BYTES`.
MAX_FRAME_BYTES = UNTRUSTED_MAX_FRAME_BYTES


def validate_frame_text(raw_data: str) -> None:
    """Raise :class:`ValueError` unless ``raw_data`` is one frame the untrusted-input policy accepts."""
    check_wits_frame(raw_data, untrusted=True)


class SecureWITSFrame(WITSFrame):
    """A :class:`WITSFrame` whose text passes :func:`validate_frame_text` (raises ``ValueError``)."""

    __slots__ = ()

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
            raise ValueError(f"raw_data must be text, not {type(raw_data).__name__}")
        validate_frame_text(raw_data)
        super().__init__(raw_data, source, timestamp, lines, offset, line, sequence)


class SecureWITSDecoder(WITSDecoder):
    """A :class:`WITSDecoder` whose ``decode_frame`` checks the text by the untrusted policy first."""

    def decode_frame(self, raw_frame: str | bytes | WITSFrame, source: str | None = None) -> DecodedFrame:
        """Check, then decode; invalid input raises ``ValueError`` naming the problem."""
        if isinstance(raw_frame, WITSFrame):
            raw_frame = raw_frame.raw_data
        text = raw_frame.decode("latin-1") if isinstance(raw_frame, bytes) else raw_frame
        return self.decode(SecureWITSFrame(raw_data=text, source=source))

    def _validate_symbol_code(self, code: str) -> bool:
        """True for a 4-digit code the dictionary knows."""
        return len(code) == 4 and code.isascii() and code.isdigit() and code in self.symbols
