"""MQTT: the broker connection shared by the MQTT sink and source, and the source for gateways.

``mqtt://[user[:password]@]broker[:1883]/<topic filter>`` (``mqtts://``, port 8883 by default, for
TLS) is a source: it subscribes to the filter with QoS 1 and reads each message's payload as raw
WITS Level 0 bytes, as gateways that put a rig's serial stream on MQTT publish it. Each topic has
its own :class:`~witskit.protocol.FrameParser` (a frame may span messages), and its frames are named
after the topic (``name=`` gives every frame one source name instead). The number of topics a
source keeps a parser for is capped (``max_topics``), so a broker full of topics cannot make it
grow without bound.

The connection options are read here once, for the sink (:mod:`witskit.pipeline.mqtt`) and the
source alike: ``ca``, ``cert``, ``key`` and ``key_password`` (TLS, as for ``tls://``: the
broker's certificate must chain to ``ca`` and name the URL's host), ``client_id`` (with it the
session is persistent: the broker keeps QoS 1 messages for a source while it reconnects) and
``keepalive``; the user and password come from the URL's user info or,
better, from the keyword options ``username`` and ``password`` (a pipeline file's ``options``), so
they are not in the URL at all. A password is never shown: URLs are redacted in every message.

aiomqtt is an optional dependency (``pip install 'witskit[mqtt]'``), imported when a connection is
made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

from witskit.errors import ConnectionLost, TransportError, UsageError
from witskit.protocol import FrameParser
from witskit.transport.base import Source, SourceEvent, reconnect_forever
from witskit.transport.options import URLOptions, redact_url
from witskit.transport.resilience import RetryPolicy

__all__ = ["CONNECTION_OPTIONS", "DEFAULT_MAX_TOPICS", "MQTTSource", "connection_settings", "require_aiomqtt"]

log = logging.getLogger("witskit.mqtt")

#: Query options every MQTT URL takes (sink and source).
CONNECTION_OPTIONS = ("client_id", "keepalive", "ca", "cert", "key", "key_password")

#: Topics a source keeps a parser for. A gateway publishes one topic per rig (or per rig and
#: record); a thousand is a large fleet. Past it, messages of new topics are counted and skipped.
DEFAULT_MAX_TOPICS = 1024

_EXTRA_HINT = "MQTT needs aiomqtt: pip install 'witskit[mqtt]'"


def require_aiomqtt(name: str) -> Any:
    """The aiomqtt module, or a :class:`~witskit.errors.UsageError` naming the extra to install."""
    try:
        import aiomqtt
    except ImportError as exc:
        raise UsageError(f"{name}: {_EXTRA_HINT}") from exc
    return aiomqtt


def connection_settings(
    url: str, query: URLOptions, options: dict[str, Any], *, build: bool
) -> dict[str, Any]:
    """aiomqtt ``Client`` keyword arguments for an ``mqtt://`` or ``mqtts://`` URL.

    ``options`` may hold ``username``, ``password`` and ``key_password`` (taken out of it); with
    ``build=False`` nothing is read from disk (a pipeline file is being checked).
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    if parts.fragment:
        raise UsageError(
            f"{shown}: '#' is MQTT's multi-level wildcard only as the URL's last character "
            "(mqtt://broker/rigs/#); elsewhere write it as %23"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(
            f"{shown}: port {parts.netloc.rpartition(':')[2]!r} is not a TCP port (1-65535)"
        ) from exc
    if not parts.hostname:
        raise UsageError(f"{shown}: missing broker host (expected {parts.scheme}://broker:port/...)")
    if port == 0:
        raise UsageError(f"{shown}: port 0 is not a TCP port (1-65535)")
    username = options.pop("username", None) or (unquote(parts.username) if parts.username else None)
    password = options.pop("password", None) or (unquote(parts.password) if parts.password else None)
    if password is not None and username is None:
        raise UsageError(f"{shown}: a password without a user name")
    keepalive = query.integer("keepalive", minimum=5)
    settings: dict[str, Any] = {
        "hostname": parts.hostname,
        "port": port or (8883 if tls else 1883),
        "username": username,
        "password": password,
        "identifier": query.text("client_id"),
        "keepalive": keepalive or 60,
    }
    key_password = options.pop("key_password", None) or query.secret("key_password")
    if not tls:
        for key in ("ca", "cert", "key"):
            if key in query:
                raise UsageError(f"{shown}: option {key!r} needs mqtts:// (TLS)")
        return settings
    if build:
        from witskit.transport.tls import client_context

        settings["tls_context"] = client_context(
            query.text("ca"), query.text("cert"), query.text("key"), key_password=key_password
        )
    return settings


@contextlib.contextmanager
def map_mqtt_errors(name: str) -> Any:
    """aiomqtt's errors (and the OS's, under them) as :class:`~witskit.errors.TransportError`."""
    aiomqtt = require_aiomqtt(name)
    try:
        yield
    except TransportError:
        raise
    except (aiomqtt.MqttError, OSError) as exc:
        raise ConnectionLost(f"{name}: {exc}") from exc


def open_client(name: str, settings: dict[str, Any], **extra: Any) -> Any:
    """An aiomqtt client (not connected yet) for :func:`connection_settings`' result."""
    aiomqtt = require_aiomqtt(name)
    return aiomqtt.Client(**settings, **extra)


class MQTTSource(Source):
    """Raw WITS frames from MQTT messages (see the module docstring)."""

    def __init__(
        self,
        url: str,
        topic_filter: str,
        settings: dict[str, Any],
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        max_topics: int = DEFAULT_MAX_TOPICS,
    ) -> None:
        self.url = redact_url(url)
        self.topic_filter = topic_filter
        self.settings = settings
        self.name = name or self.url
        self.fixed_name = name
        self.retry = retry or reconnect_forever()
        self.max_topics = max_topics
        #: Messages skipped because their topic was past ``max_topics``.
        self.skipped = 0
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<MQTTSource {self.url}>"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MQTTSource:
        """A source from ``mqtt://broker[:port]/<topic filter>`` (``+`` and ``#`` as in MQTT; the
        query, if any, goes before a final ``#``: ``mqtt://broker/rigs/?client_id=gw#``)."""
        query = URLOptions(url, (*CONNECTION_OPTIONS, "name", "max_topics"))
        require_aiomqtt(query.url)
        parts = urlsplit(url)
        # A '#' ends the URL (mqtt://broker/rigs/#): urlsplit reads it as an empty fragment.
        topic_filter = unquote(parts.path[1:]) + ("#" if url.rstrip().endswith("#") else "")
        if not topic_filter:
            raise UsageError(f"{query.url}: names no topic filter (expected mqtt://broker/rigs/+/wits)")
        settings = connection_settings(url, query, options, build=True)
        kwargs: dict[str, Any] = {"name": query.text("name"), "max_topics": query.count("max_topics")}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.update(options)
        return cls(url, topic_filter, settings, **kwargs)

    async def events(self) -> AsyncIterator[SourceEvent]:
        """Every frame (and FrameError) of the subscribed topics; reconnects until closed."""
        parsers: dict[str, FrameParser] = {}
        failures = 0
        while not self._closed.is_set():
            try:
                with map_mqtt_errors(self.url):
                    persistent = False if self.settings["identifier"] else None
                    client = open_client(self.url, self.settings, clean_session=persistent)
                    async with client:
                        await client.subscribe(self.topic_filter, qos=1)
                        log.info("%s: subscribed to %s", self.url, self.topic_filter)
                        failures = 0
                        async for message in client.messages:
                            topic = str(message.topic)
                            parser = parsers.get(topic)
                            if parser is None:
                                if len(parsers) >= self.max_topics:
                                    self.skipped += 1
                                    continue
                                parser = parsers[topic] = FrameParser(source=self.fixed_name or topic)
                            payload = message.payload
                            if isinstance(payload, str):
                                payload = payload.encode()
                            if not isinstance(payload, bytes | bytearray):
                                continue
                            for event in parser.feed(bytes(payload)):
                                yield event
            except TransportError as exc:
                if self._closed.is_set():
                    return
                failures += 1
                delay = self.retry.backoff(failures)
                log.warning("%s: %s; reconnecting in %.1f s", self.url, exc, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._closed.wait()

    async def aclose(self) -> None:
        """End the iteration at the next message or reconnect."""
        self._closed.set()
