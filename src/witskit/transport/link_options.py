"""The options of a client link's URL, shared by ``tcp://``, ``tls://`` and ``serial://``.

A link to an EDR takes the same options whatever carries it: the Pason handshake, the request
mode, idle and connect timeouts, reconnects and the source name. They are read here, once, with
the one option grammar of :mod:`witskit.transport.options`; :mod:`witskit.transport.urls` and
:mod:`witskit.transport.serial` both use this module, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from witskit.protocol.encoder import handshake_packet, request_packet
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport.options import FALSE_WORDS, TRUE_WORDS, URLOptions

__all__ = ["CLIENT_OPTIONS", "DEFAULT_REQUEST_INTERVAL", "client_options"]

#: Request mode without ``request_interval``: a rig's record 1 changes every 1-10 s, so asking
#: once a second sees every update without flooding the EDR.
DEFAULT_REQUEST_INTERVAL = 1.0

#: The options every client link takes in its URL (``tcp://``, ``tls://``, ``serial://``).
CLIENT_OPTIONS = (
    "name",
    "handshake",
    "handshake_interval",
    "idle_timeout",
    "request",
    "request_interval",
    "reconnect",
    "connect_timeout",
)


def _handshake(query: URLOptions) -> bytes | None:
    value = query.raw("handshake")
    if value is None or value.lower() in TRUE_WORDS:
        return DEFAULT_HANDSHAKE
    if value.lower() in FALSE_WORDS:
        return None
    # A custom packet: one data line, code and value, as the EDR's manual gives it (0111-9999).
    code, text = value[:4], value[4:]
    if len(value) < 5 or not code.isdigit():
        raise query.bad("handshake", "is not 0, 1 or a data line such as 0111-9999")
    try:
        return handshake_packet(code, text)
    except ValueError as exc:
        raise query.bad("handshake", f"cannot be sent: {exc}") from exc


def _request(query: URLOptions) -> bytes | None:
    value = query.raw("request")
    if value is None or value.lower() in FALSE_WORDS:
        return None
    try:
        records = [int(r) for r in value.split(",")]
    except ValueError:
        records = []
    if not records or not all(1 <= r <= 99 for r in records):
        raise query.bad("request", "is not 0 or record numbers 1-99 (request=1 asks for record 1)")
    return request_packet(records)


def client_options(query: URLOptions) -> dict[str, Any]:
    """The keyword arguments of a client link (:class:`~witskit.transport.base.LinkSource`) from
    the :data:`CLIENT_OPTIONS` given in ``query``; options not given are left to the link's defaults."""
    options: dict[str, Any] = {}
    if "handshake" in query:
        options["handshake"] = _handshake(query)
    if "handshake_interval" in query:
        options["handshake_interval"] = query.seconds("handshake_interval", zero_is_none=True)
    if "idle_timeout" in query:
        options["idle_timeout"] = query.seconds("idle_timeout", zero_is_none=True)
    request = _request(query)
    if request is not None:
        options["request"] = request
        options["request_interval"] = (
            query.seconds("request_interval", zero_is_none=False) or DEFAULT_REQUEST_INTERVAL
        )
    elif "request_interval" in query:
        raise query.bad("request_interval", "needs request=1 (request mode)")
    name = query.text("name")
    if name is not None:
        options["name"] = name
    reconnect = query.flag("reconnect")
    if reconnect is not None:
        options["reconnect"] = reconnect
    if "connect_timeout" in query:
        options["connect_timeout"] = query.seconds("connect_timeout", zero_is_none=False)
    return options
