"""A strict validation policy for frames that come from outside (HTTP uploads, untrusted peers).

The plan's sample validator allowed only digits in values, which rejects the spec's ASCII items
(well names, vendor names such as ``1984PASON/EDR``). This one types each line by the dictionary:
numeric items must hold a number, text items any printable ASCII; control characters, non-ASCII
bytes, oversized frames and broken structure are refused with a message naming the line. A known
vendor header line without a code (``EDR PASON``, see :func:`witskit.protocol.known_header_lines`)
is accepted, as the decoder accepts it.
"""

from __future__ import annotations

import re
from datetime import datetime

from witskit.protocol import DecodedFrame, WITSDecoder, WITSFrame, known_header_lines
from witskit.symbols import WITSDataType, default_table

__all__ = ["MAX_FRAME_BYTES", "SecureWITSDecoder", "SecureWITSFrame", "validate_frame_text"]

#: The plan's maximum: a record-19 frame (94 items) of full-length text items fits well within it.
MAX_FRAME_BYTES = 10_000

_ALLOWED = re.compile(r"[^\x20-\x7e\r\n\t]")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def validate_frame_text(raw_data: str, *, max_bytes: int = MAX_FRAME_BYTES) -> None:
    """Raise :class:`ValueError` unless ``raw_data`` is one clean frame by the policy above."""
    size = len(raw_data.encode("utf-8", "replace"))
    if size > max_bytes:
        raise ValueError(f"WITS frame exceeds maximum size ({size} bytes > {max_bytes})")
    bad = _ALLOWED.search(raw_data)
    if bad is not None:
        raise ValueError(f"WITS frame contains invalid characters ({bad.group()!r} at offset {bad.start()})")
    lines = [ln.strip() for ln in raw_data.strip().splitlines() if ln.strip()]
    if len(lines) < 3 or lines[0] != "&&" or lines[-1] != "!!":
        raise ValueError("Invalid WITS frame structure: expected '&&', data lines, '!!' each on its own line")
    table = default_table()
    headers = [re.compile(p, re.IGNORECASE) for p in known_header_lines()]
    for number, line in enumerate(lines[1:-1], start=2):
        code, value = line[:4], line[4:].strip()
        if "&&" not in line and "!!" not in line and any(h.fullmatch(line) for h in headers):
            continue  # a vendor header line: no code, nothing to type
        if not (code.isascii() and code.isdigit()) or "&&" in line or "!!" in line:
            raise ValueError(f"Invalid data line format: {line!r} (line {number}: no 4-digit code)")
        sym = table.get(code)
        numeric = sym is not None and sym.data_type is not WITSDataType.ASCII
        if numeric and not _NUMBER.fullmatch(value):
            name = sym.name if sym else ""
            raise ValueError(
                f"Invalid data line format: {line!r} (line {number}: {code} {name} needs a number)"
            )


class SecureWITSFrame(WITSFrame):
    """A :class:`WITSFrame` that also passes :func:`validate_frame_text` (raises ``ValueError``)."""

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
    """A decoder that validates each text frame with :class:`SecureWITSFrame` first."""

    def decode_frame(self, raw_frame: str | bytes | WITSFrame, source: str | None = None) -> DecodedFrame:
        """Validate, then decode; invalid input raises ``ValueError`` naming the problem."""
        if isinstance(raw_frame, WITSFrame):
            raw_frame = raw_frame.raw_data
        text = raw_frame.decode("latin-1") if isinstance(raw_frame, bytes) else raw_frame
        secure = SecureWITSFrame(raw_data=text, source=source)
        return self.decode(secure)

    def _validate_symbol_code(self, code: str) -> bool:
        """True for a 4-digit code the dictionary knows."""
        return len(code) == 4 and code.isascii() and code.isdigit() and code in self.symbols
