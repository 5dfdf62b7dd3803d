"""WitsKit: WITS Level 0 drilling data, from the wire to a database, served securely.

The core is importable without any optional dependency::

    >>> import witskit
    >>> frame = witskit.decode_frame("&&\\n01083650.40\\n011323.38\\n!!")
    >>> frame.get_value("0108").parsed_value
    3650.4

The witskit 0.1 names (``decode_frame``, ``WITSDecoder``, ``WITSFrame``, ``DecodedFrame``...) keep
their meaning; the streaming API (:class:`FrameParser`, :func:`iter_decode`) is new.
"""

from witskit import _schemes
from witskit._version import __version__
from witskit.errors import (
    ConversionError,
    DecodeError,
    EncodeError,
    FrameError,
    ProtocolError,
    SymbolError,
    UsageError,
    WitsKitError,
)
from witskit.protocol import (
    DecodedData,
    DecodedFrame,
    FrameParser,
    WITSDecoder,
    WITSFrame,
    decode_file,
    decode_frame,
    encode_frame,
    handshake_packet,
    iter_decode,
    iter_frames,
    request_packet,
    split_multiple_frames,
    validate_wits_frame,
)
from witskit.symbols import (
    WITS_SYMBOLS,
    SymbolTable,
    WITSDataType,
    WITSSymbol,
    get_record_description,
    get_record_types,
    get_symbol_by_code,
    get_symbols_by_record_type,
    load_overlay,
    search_symbols,
)
from witskit.units import UnitConverter, convert

# Sources served above witskit.transport, by URL scheme: open_source imports the module named
# here when it first opens such a URL (transport may not import them; docs/architecture.md).
_schemes.register_source("sim", "witskit.sim.source", "SimulatorSource")

__author__ = "The WitsKit authors"
__license__ = "MIT"

__all__ = [
    "WITS_SYMBOLS",
    "ConversionError",
    "DecodeError",
    "DecodedData",
    "DecodedFrame",
    "EncodeError",
    "FrameError",
    "FrameParser",
    "ProtocolError",
    "SymbolError",
    "SymbolTable",
    "UnitConverter",
    "UsageError",
    "WITSDataType",
    "WITSDecoder",
    "WITSFrame",
    "WITSSymbol",
    "WitsKitError",
    "__author__",
    "__license__",
    "__version__",
    "convert",
    "decode_file",
    "decode_frame",
    "encode_frame",
    "get_record_description",
    "get_record_types",
    "get_symbol_by_code",
    "get_symbols_by_record_type",
    "handshake_packet",
    "iter_decode",
    "iter_frames",
    "load_overlay",
    "request_packet",
    "search_symbols",
    "split_multiple_frames",
    "validate_wits_frame",
]
