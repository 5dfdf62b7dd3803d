"""Named limits of the streaming parser and the decoder, each with the reason for its number.

Every limit is also a keyword argument of :class:`~witskit.protocol.FrameParser`; exceeding one
produces a :class:`~witskit.errors.FrameError`, never unbounded memory and never a silent drop. A
frame over a frame limit is skipped to the next ``&&``; a line over ``max_line_length`` is skipped to
its own end and the rest of its frame is kept.
"""

from __future__ import annotations

#: The longest item in the spec is ASCII 256 plus its 4-digit code; four times that leaves room for
#: vendor items and padding while a line with no end (a wrong baud rate, a binary peer) is caught.
#: A longer line is reported (its line number, offset and first bytes) and its bytes are dropped as
#: they arrive, so one bad line costs neither memory nor the valid items around it.
DEFAULT_MAX_LINE_LENGTH = 1024

#: The largest record (19, Configuration) has 94 items; ten times that allows vendor extensions and
#: several records in one frame, and still stops a frame whose '!!' never comes.
DEFAULT_MAX_LINES_PER_FRAME = 1000

#: A frame of the maximum number of lines at a typical 20-60 bytes per line.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024

#: Bytes outside any frame are reported at least this often, so a flood of noise shows up in the
#: error stream quickly and is never buffered (only a short excerpt of it is kept).
DEFAULT_MAX_GARBAGE_BYTES = 64 * 1024

#: How many bytes of offending input an error quotes.
EXCERPT_BYTES = 48

#: Values that mean "no reading" in the field: -9999 (most EDRs), -999.25 (the LAS null, used by
#: mud-logging units), -8888 (some MWD systems).
DEFAULT_NULL_VALUES: tuple[float, ...] = (-9999.0, -999.25, -8888.0)

#: The packet a client sends to keep a Pason-style EDR talking (item 0111 with a null value).
DEFAULT_HANDSHAKE = b"&&\r\n0111-9999\r\n!!\r\n"

#: Lines without a 4-digit code that vendors send inside frames, as regular expressions matched
#: against the whole (stripped) line, any case. A Pason serial feed sends ``EDR PASON`` as a line
#: of every frame. Add one with :func:`witskit.protocol.register_header_line` (or a decoder's
#: ``header_lines``); any other line without a code is an error in the frame.
DEFAULT_HEADER_LINES: tuple[str, ...] = (r"EDR\s+PASON",)

# The untrusted-input policy -----------------------------------------------------------------------
# One frame that arrives on its own from outside (an HTTP upload, a peer we do not control, the seed's
# ``SecureWITSFrame``) is checked by :func:`~witskit.protocol.check_wits_frame` with ``untrusted=True``:
# the same parser and decoder as ``witskit validate`` (exactly one frame, nothing around it, no
# problem in its ``errors``, so every numeric item holds a number), plus the limits below.

#: A single untrusted frame is one record: the largest (19, Configuration, 94 items at their
#: dictionary lengths) is about 1.1 KB, so 10,000 bytes is nine times that. It is smaller than
#: :data:`DEFAULT_MAX_FRAME_BYTES` because that limit bounds what a *stream* parser buffers for a
#: trusted feed, where one frame may carry several records and vendor extensions (up to
#: :data:`DEFAULT_MAX_LINES_PER_FRAME` lines); a lone frame from outside has no such reason to be big,
#: and is refused before it is parsed.
UNTRUSTED_MAX_FRAME_BYTES = 10_000

#: The characters an untrusted frame may hold, as a regular-expression character class: printable
#: ASCII, and the CR, LF and TAB of line ends and padding. Control characters and non-ASCII text
#: (which a trusted feed may send, decoded as UTF-8 or Windows-1252) are refused.
UNTRUSTED_CHARACTERS = r"[\x20-\x7e\r\n\t]"
