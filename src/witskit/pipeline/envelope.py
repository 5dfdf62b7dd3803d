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

**Bundles (version 2).** Several frames of one source that leave an edge in one batch (a backlog
after an outage: the spool read oldest first, a batch holding many seconds of each rig) travel in
one message, so the stream, its replicas and the workers handle one message where they handled
tens:

* subject ``<prefix>.<source>``, as version 1: a bundle holds one source's frames, in receive order;
* body: per frame its spool sequence (u64, little-endian), the length of its record (u32), then
  the spool record as in version 1;
* headers: ``WitsKit-Envelope: 2``, ``WitsKit-Edge``, ``WitsKit-Spool-Seq: <first sequence>``,
  ``WitsKit-Frames: <count>`` and ``Nats-Msg-Id: <edge>:<first>-<last>:<count>:<blake2b-64 of the
  body>``.

The same batch published again (a lost PubAck, a failed batch retried) makes the same bundles, so
the stream drops the repeat as it does a version 1 message. An edge restarted after a crash may
cut its spool into other batches, and so other bundles with other ids: those are stored again
and the store's frame key skips every frame already written (as past the duplicate window). A
single frame still goes as version 1, so live data (one frame of a rig per batch) is unchanged.

A reader (:func:`decode_message`) refuses anything else with an :class:`EnvelopeError` whose
``kind`` says what it was; a newer envelope version is refused, never half read. A bundle whose
framing is broken is refused whole; one whose framing holds but one of whose records is not a
frame gives the others and an error for that record.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from witskit.errors import WitsKitError
from witskit.pipeline.records import SpoolRecordError, pack_frame, unpack_frame
from witskit.protocol import WITSFrame

__all__ = [
    "BUNDLE_VERSION",
    "ENVELOPE_VERSION",
    "HEADER_EDGE",
    "HEADER_ENVELOPE",
    "HEADER_FRAMES",
    "HEADER_SEQUENCE",
    "MAX_BUNDLE_FRAMES",
    "Envelope",
    "EnvelopeError",
    "bundle_id",
    "decode_envelope",
    "decode_message",
    "encode_bundle",
    "encode_envelope",
    "message_id",
]

ENVELOPE_VERSION: Final = 1
#: The envelope of several frames of one source (see the module docstring).
BUNDLE_VERSION: Final = 2
HEADER_ENVELOPE: Final = "WitsKit-Envelope"
HEADER_EDGE: Final = "WitsKit-Edge"
HEADER_SEQUENCE: Final = "WitsKit-Spool-Seq"
#: A bundle's frame count (a check on its body).
HEADER_FRAMES: Final = "WitsKit-Frames"
#: Most frames a reader takes in one bundle (an edge makes at most 256): a larger count is
#: refused before the body is read, so one message cannot make a worker decode without bound.
MAX_BUNDLE_FRAMES: Final = 1024
#: Before each record of a bundle: its spool sequence and its length.
_RECORD_HEAD: Final = struct.Struct("<QI")
#: JetStream's de-duplication header.
HEADER_MSG_ID: Final = "Nats-Msg-Id"


class EnvelopeError(WitsKitError):
    """A message on the stream is not a frame this version of WitsKit reads.

    ``kind`` is one word to count and log by: ``foreign`` (no ``WitsKit-Envelope`` header: not
    from a WitsKit edge), ``version`` (an envelope or record version this WitsKit does not know),
    ``header`` (a WitsKit header that is malformed, or a bundle's frame count that is not its
    body's), ``too-large`` (a bundle of more than ``MAX_BUNDLE_FRAMES`` frames), ``truncated``,
    ``source`` or ``not-a-frame`` (the body, see :class:`~witskit.pipeline.records.SpoolRecordError`).
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


def bundle_id(edge: str, sequences: Sequence[int], body: bytes) -> str:
    """``Nats-Msg-Id`` of the bundle of spool records ``sequences`` of ``edge`` whose body is ``body``."""
    digest = hashlib.blake2b(body, digest_size=8).hexdigest()
    return f"{edge}:{sequences[0]}-{sequences[-1]}:{len(sequences)}:{digest}"


def encode_bundle(records: Sequence[tuple[int, bytes]], *, edge: str) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the bundle of one source's spool ``records`` ((sequence, record), in
    receive order): see the module docstring."""
    if not records:
        raise ValueError("a bundle holds at least one record")
    head = _RECORD_HEAD.pack
    body = b"".join([part for seq, record in records for part in (head(seq, len(record)), record)])
    sequences = [seq for seq, _ in records]
    headers = {
        HEADER_ENVELOPE: str(BUNDLE_VERSION),
        HEADER_EDGE: edge,
        HEADER_SEQUENCE: str(sequences[0]),
        HEADER_FRAMES: str(len(records)),
        HEADER_MSG_ID: bundle_id(edge, sequences, body),
    }
    return headers, body


def _edge_and_number(headers: Mapping[str, str], name: str) -> tuple[str, int]:
    edge = headers.get(HEADER_EDGE, "")
    text = headers.get(name, "")
    if not edge or not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise EnvelopeError(f"WitsKit-Edge or {name} missing or malformed", kind="header")
    return edge, int(text)


def _version(headers: Mapping[str, str] | None) -> str:
    version = (headers or {}).get(HEADER_ENVELOPE)
    if version is None:
        raise EnvelopeError("no WitsKit-Envelope header: not a message from a WitsKit edge", kind="foreign")
    if version not in _VERSIONS:
        raise EnvelopeError(f"envelope version {version[:20]!r}, this WitsKit reads 1 and 2", kind="version")
    return version


_VERSIONS: Final = (str(ENVELOPE_VERSION), str(BUNDLE_VERSION))


def decode_envelope(headers: Mapping[str, str] | None, body: bytes) -> Envelope:
    """The frame a single-frame message (version 1) carries; :class:`EnvelopeError` (with its
    ``kind``) for anything else, a bundle included (:func:`decode_message` reads both)."""
    if _version(headers) != str(ENVELOPE_VERSION):
        raise EnvelopeError("a bundle of frames, not one frame", kind="version")
    assert headers is not None
    return _single(headers, body)


def _single(headers: Mapping[str, str], body: bytes) -> Envelope:
    """A version 1 message's frame (its version already read)."""
    edge, sequence = _edge_and_number(headers, HEADER_SEQUENCE)
    try:
        frame = unpack_frame(body, sequence=sequence)
    except SpoolRecordError as exc:
        raise EnvelopeError(str(exc), kind=exc.kind) from None
    return Envelope(frame, edge, sequence)


def decode_message(
    headers: Mapping[str, str] | None, body: bytes
) -> tuple[list[Envelope], list[EnvelopeError]]:
    """The frames a message carries (one, or a bundle's) and an error for each record of a bundle
    that is not a frame; :class:`EnvelopeError` when the message as a whole is not ours to read
    (foreign, an unknown version, bad headers, a bundle's framing broken or its count wrong)."""
    version = _version(headers)
    assert headers is not None
    if version == str(ENVELOPE_VERSION):
        return [_single(headers, body)], []
    edge, count = _edge_and_number(headers, HEADER_FRAMES)
    if count > MAX_BUNDLE_FRAMES:  # refused before anything of it is read or decoded
        raise EnvelopeError(
            f"bundle: {count} frames, more than the {MAX_BUNDLE_FRAMES} a bundle may hold", kind="too-large"
        )
    view = memoryview(body)
    size = len(body)
    step = _RECORD_HEAD.size
    unpack_head = _RECORD_HEAD.unpack_from
    spans: list[tuple[int, int, int]] = []
    at = 0
    while at < size:
        if at + step > size:
            raise EnvelopeError(f"bundle: its record {len(spans) + 1} is cut in its head", kind="truncated")
        sequence, length = unpack_head(view, at)
        at += step
        if at + length > size:
            raise EnvelopeError(
                f"bundle: record {len(spans) + 1} (spool record {sequence}) runs past the body's end",
                kind="truncated",
            )
        spans.append((sequence, at, at + length))
        at += length
        if len(spans) > count:
            break
    if len(spans) != count or not count:
        said = "more" if len(spans) > count else str(len(spans))
        raise EnvelopeError(f"bundle: {said} records where WitsKit-Frames says {count}", kind="header")
    out: list[Envelope] = []
    bad: list[EnvelopeError] = []
    for sequence, start, end in spans:
        try:
            out.append(Envelope(unpack_frame(body[start:end], sequence=sequence), edge, sequence))
        except SpoolRecordError as exc:
            bad.append(EnvelopeError(str(exc), kind=exc.kind))
    return out, bad
