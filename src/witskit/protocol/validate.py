"""Is this text exactly one valid frame? The one frame check, for ``witskit validate`` and its callers.

:func:`validate_wits_frame` (the witskit 0.1 name) answers yes or no; :func:`check_wits_frame` raises
:class:`~witskit.errors.DecodeError` with the first reason and, with ``untrusted=True``, applies the
untrusted-input limits of :mod:`witskit.protocol.limits` first (the security layer's
``SecureWITSFrame`` is this check). Both run :func:`~witskit.protocol.iter_decode`, the parser and
decoder of ``witskit validate``, so the command and the functions cannot disagree.
"""

from __future__ import annotations

import re

from witskit.errors import DecodeError, FrameError
from witskit.protocol.decoder import DecodedFrame, text_value
from witskit.protocol.limits import UNTRUSTED_CHARACTERS, UNTRUSTED_MAX_FRAME_BYTES
from witskit.protocol.stream import iter_decode
from witskit.symbols import WITSDataType

__all__ = ["check_wits_frame", "validate_wits_frame"]


def validate_wits_frame(raw_frame: str | bytes) -> bool:
    """True when the text is exactly one frame that ``witskit validate`` accepts.

    Both run the same parser and decoder (:func:`~witskit.protocol.iter_decode` with a default
    :class:`~witskit.protocol.WITSDecoder`) and accept the same thing: one frame, no bytes around it
    that are not whitespace, and no problem in its ``errors``. So ``"&&\\nhello world\\n!!"`` (a
    line without a 4-digit code) is not valid; a known vendor header line such as ``EDR PASON`` is.
    :func:`check_wits_frame` is the same check, raising with the reason.
    """
    try:
        check_wits_frame(raw_frame)
    except DecodeError:
        return False
    return True


_UNTRUSTED_BAD = re.compile(f"[^{UNTRUSTED_CHARACTERS[1:]}")
_LINE_OF_FRAME = re.compile(r"line (\d+) of frame at line \d+ \(byte \d+\): ")


def check_wits_frame(raw_frame: str | bytes, *, untrusted: bool = False) -> DecodedFrame:
    """Decode text that must be exactly one valid frame; raise :class:`~witskit.errors.DecodeError`
    (a ``ValueError``) with the first reason it is not.

    The check is :func:`validate_wits_frame`'s (the parser and decoder of ``witskit validate``). With
    ``untrusted=True`` the untrusted-input policy of :mod:`witskit.protocol.limits` comes first: at
    most :data:`~witskit.protocol.limits.UNTRUSTED_MAX_FRAME_BYTES`, only
    :data:`~witskit.protocol.limits.UNTRUSTED_CHARACTERS`. Messages say what was wrong and on which
    line: ``exceeds maximum size``, ``invalid characters``, ``Invalid WITS frame structure``, or
    ``Invalid data line format: '<line>' (line N: ...)`` for a line the decoder refused.
    """
    if untrusted:
        _check_untrusted(raw_frame)
    data = raw_frame.encode("latin-1", "replace") if isinstance(raw_frame, str) else bytes(raw_frame)
    events = list(iter_decode(data))
    if len(events) != 1 or not isinstance(events[0], DecodedFrame):
        text = raw_frame if isinstance(raw_frame, str) else data.decode("latin-1")
        lines = text.strip().splitlines()
        for number, line in enumerate(lines[1:-1], start=2):
            stripped = line.strip()
            if stripped not in ("&&", "!!") and ("&&" in line or "!!" in line):
                # The parser reads a frame marker inside this line: name the line, not the frames.
                head = stripped[:4]
                coded = len(head) == 4 and head.isascii() and head.isdigit()
                reason = "a frame marker inside a data line" if coded else "no 4-digit code"
                raise DecodeError(f"Invalid data line format: {stripped!r} (line {number}: {reason})")
        why = next((e.reason for e in events if isinstance(e, FrameError)), f"{len(events)} frames")
        raise DecodeError(
            f"Invalid WITS frame structure: expected '&&', data lines, '!!' each on its own line ({why})"
        )
    decoded = events[0]
    if decoded.errors:
        raise DecodeError(_line_problem(decoded, decoded.errors[0]))
    return decoded


def _check_untrusted(raw_frame: str | bytes) -> None:
    """The untrusted-input limits, before anything is copied or parsed: size, then characters."""
    limit = UNTRUSTED_MAX_FRAME_BYTES
    if isinstance(raw_frame, str):
        # Each character is at least one byte: a long text is refused without encoding it.
        size = len(raw_frame) if len(raw_frame) > limit else len(raw_frame.encode("utf-8", "replace"))
        text = raw_frame
    else:
        size = len(raw_frame)
        text = "" if size > limit else bytes(raw_frame).decode("latin-1")  # one character per byte
    if size > limit:
        raise DecodeError(f"WITS frame exceeds maximum size ({size} bytes > {limit})")
    bad = _UNTRUSTED_BAD.search(text)
    if bad is not None:
        raise DecodeError(f"WITS frame contains invalid characters ({bad.group()!r} at offset {bad.start()})")


def _line_problem(decoded: DecodedFrame, error: str) -> str:
    """``Invalid data line format: '<line>' (line N: <reason>)`` for the decoder's first error."""
    found = _LINE_OF_FRAME.match(error)
    if found is None:  # a frame-level problem (the DATE/TIME items): the decoder's words
        return f"Invalid data line format: {error}"
    index = int(found.group(1)) - 1
    line = text_value(decoded.frame.lines[index].strip())
    reason = error[found.end() :].split("; kept", maxsplit=1)[0]  # refused here, not kept
    head = line[:4]
    if not (len(head) == 4 and head.isascii() and head.isdigit()):
        reason = "no 4-digit code"
    else:
        sym = decoded.symbols.get(head)
        if sym is not None and sym.data_type is not WITSDataType.ASCII:
            try:
                float(line[4:].strip())
            except ValueError:
                reason = f"{head} {sym.name} needs a number"
    return f"Invalid data line format: {line!r} (line {decoded.frame.line + index + 1}: {reason})"
