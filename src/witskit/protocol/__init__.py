"""WITS Level 0 protocol, sans-I/O: framing, decoding, encoding, limits.

Nothing here imports asyncio, sockets, serial ports, databases or web frameworks; transports feed
bytes to :class:`FrameParser` and get :class:`WITSFrame` and :class:`FrameError` events back.
"""

from witskit.errors import DecodeError, EncodeError, FrameError, ProtocolError
from witskit.protocol.decoder import (
    DecodedData,
    DecodedFrame,
    Value,
    WITSDecoder,
    decode_file,
    decode_frame,
    known_header_lines,
    register_header_line,
    split_multiple_frames,
    text_value,
    unknown_symbol,
)
from witskit.protocol.encoder import (
    LINE_ENDINGS,
    encode_frame,
    format_value,
    handshake_packet,
    request_packet,
)
from witskit.protocol.parser import FrameEvent, FrameParser, WITSFrame
from witskit.protocol.stream import iter_decode, iter_frames
from witskit.protocol.validate import check_wits_frame, validate_wits_frame

__all__ = [
    "LINE_ENDINGS",
    "DecodeError",
    "DecodedData",
    "DecodedFrame",
    "EncodeError",
    "FrameError",
    "FrameEvent",
    "FrameParser",
    "ProtocolError",
    "Value",
    "WITSDecoder",
    "WITSFrame",
    "check_wits_frame",
    "decode_file",
    "decode_frame",
    "encode_frame",
    "format_value",
    "handshake_packet",
    "iter_decode",
    "iter_frames",
    "known_header_lines",
    "register_header_line",
    "request_packet",
    "split_multiple_frames",
    "text_value",
    "unknown_symbol",
    "validate_wits_frame",
]
