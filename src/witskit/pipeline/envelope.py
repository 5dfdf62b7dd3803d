"""The fleet's message: one received frame as an edge publishes it to NATS JetStream (version 1).

* subject ``<prefix>.<source>`` (the source name as one subject token:
  :func:`~witskit.transport.jetstream.subject_token`);
* body: the spool record of the frame, unchanged (``witskit.pipeline.records``): one byte of
  version (1), the source name's length (u16, little-endian), the receive time in microseconds
  since 1970 UTC (i64), the source name (UTF-8), then the frame's bytes exactly as received;
* headers: ``WitsKit-Envelope: 1``, ``WitsKit-Edge: <edge>``, ``WitsKit-Spool-Seq: <n>`` and
  ``Nats-Msg-Id: <edge>:<n>:<blake2b-64 of the body, hex>``.

The message id is the edge and the spool sequence, so a re-publish of a record (after a lost
PubAck, a timeout, or a crash of the edge before its spool ack) is dropped by the stream's
duplicate window. The body's hash is part of it so that a spool directory wiped and restarted from
sequence 1 never has a new frame taken for an old one. Past the window, a duplicate reaches the
store, whose frame key (source, frame time, bytes: the same wherever it is computed) skips it.

A reader (:func:`decode_envelope`) refuses anything else with an :class:`EnvelopeError` whose
``kind`` says what it was; a newer envelope version is refused, never half read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from witskit.errors import WitsKitError
from witskit.pipeline.records import SpoolRecordError, pack_frame, unpack_frame
from witskit.protocol import WITSFrame

__all__ = [
    "ENVELOPE_VERSION",
    "HEADER_EDGE",
    "HEADER_ENVELOPE",
    "HEADER_SEQUENCE",
    "Envelope",
    "EnvelopeError",
    "decode_envelope",
    "encode_envelope",
    "message_id",
]

ENVELOPE_VERSION: Final = 1
HEADER_ENVELOPE: Final = "WitsKit-Envelope"
HEADER_EDGE: Final = "WitsKit-Edge"
HEADER_SEQUENCE: Final = "WitsKit-Spool-Seq"
#: JetStream's de-duplication header.
HEADER_MSG_ID: Final = "Nats-Msg-Id"


class EnvelopeError(WitsKitError):
    """A message on the stream is not a frame this version of WitsKit reads.

    ``kind`` is one word to count and log by: ``foreign`` (no ``WitsKit-Envelope`` header: not
    from a WitsKit edge), ``version`` (an envelope or record version this WitsKit does not know),
    ``header`` (a WitsKit header that is malformed), ``truncated``, ``source`` or ``not-a-frame``
    (the body, see :class:`~witskit.pipeline.records.SpoolRecordError`).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Envelope:
    """A frame as it came off the stream: the frame (source, receive time, bytes) and its origin."""

    frame: WITSFrame
    edge: str
    sequence: int


def message_id(edge: str, sequence: int, body: bytes) -> str:
    """``Nats-Msg-Id`` of spool record ``sequence`` of ``edge`` whose envelope body is ``body``."""
    return f"{edge}:{sequence}:{hashlib.blake2b(body, digest_size=8).hexdigest()}"


def encode_envelope(frame: WITSFrame, *, edge: str, sequence: int) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the message that carries ``frame`` (see the module docstring)."""
    body = pack_frame(frame)
    headers = {
        HEADER_ENVELOPE: str(ENVELOPE_VERSION),
        HEADER_EDGE: edge,
        HEADER_SEQUENCE: str(sequence),
        HEADER_MSG_ID: message_id(edge, sequence, body),
    }
    return headers, body


def decode_envelope(headers: Mapping[str, str] | None, body: bytes) -> Envelope:
    """The frame a message carries; :class:`EnvelopeError` (with its ``kind``) for anything else."""
    version = (headers or {}).get(HEADER_ENVELOPE)
    if version is None:
        raise EnvelopeError("no WitsKit-Envelope header: not a message from a WitsKit edge", kind="foreign")
    if version != str(ENVELOPE_VERSION):
        raise EnvelopeError(f"envelope version {version[:20]!r}, this WitsKit reads 1", kind="version")
    assert headers is not None
    edge = headers.get(HEADER_EDGE, "")
    sequence_text = headers.get(HEADER_SEQUENCE, "")
    if not edge or not (sequence_text.isascii() and sequence_text.isdigit()):
        raise EnvelopeError("WitsKit-Edge or WitsKit-Spool-Seq missing or malformed", kind="header")
    sequence = int(sequence_text)
    try:
        frame = unpack_frame(body, sequence=sequence)
    except SpoolRecordError as exc:
        raise EnvelopeError(str(exc), kind=exc.kind) from None
    return Envelope(frame, edge, sequence)
