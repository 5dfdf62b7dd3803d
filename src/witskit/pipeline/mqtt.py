"""The MQTT sink: ``mqtt://broker:1883/<topic prefix>`` and ``mqtts://`` (TLS).

One message per decoded frame, QoS 1, on ``<prefix>/<source>/<record>`` (the record as two digits,
``01``), with a JSON payload of schema ``witskit/frame/1`` (:func:`frame_message`)::

    {"schema": "witskit/frame/1", "source": "rig-1", "record": 1,
     "time": "2026-12-03T13:25:33+00:00", "received": "2026-12-03T13:25:33.512000+00:00",
     "values": {"DBTM": 3650.4, "WID": "RIG-1", "ROPA": null},
     "units": {"DBTM": "F", "WID": "", "ROPA": "F/HR"},
     "codes": {"DBTM": "0108", "WID": "0101", "ROPA": "0113"}}

``values`` holds each point by its mnemonic (the first, when a code repeats in a frame): a number,
a text, or ``null`` for a null sentinel; ``units`` and ``codes`` give its unit label (in the
pipeline's unit system) and its WITS code. A new field may be added within schema 1; a field
removed or changed in meaning makes it schema 2. Characters of a source name that MQTT gives a
meaning in a topic level (``/``, ``+``, ``#``) are written as ``_``.

With ``retain_latest=1`` the last frame of each source and record in a batch also updates a
retained message per channel, ``<prefix>/<source>/latest/<mnemonic>`` (schema
``witskit/value/1``: ``time``, ``value``, ``unit``, ``code``), so a dashboard that subscribes sees
the current value at once.

``write`` returns only when the broker has acknowledged every message of the batch (PUBACK); the
pipeline then lets go of the spool. When the broker is down, the write fails, the batch stays in
the spool and is published again when it is back: nothing is lost, and a message whose PUBACK was
lost in the outage may arrive twice (at least once; a consumer drops duplicates by ``source``,
``record`` and ``time``, or by ``received``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from witskit.errors import UsageError
from witskit.pipeline.base import Sink
from witskit.protocol import DecodedFrame
from witskit.transport.mqtt import (
    CONNECTION_OPTIONS,
    connection_settings,
    map_mqtt_errors,
    open_client,
    require_aiomqtt,
)
from witskit.transport.options import URLOptions, redact_url

__all__ = ["FRAME_SCHEMA", "VALUE_SCHEMA", "MQTTSink", "check_mqtt_url", "frame_message", "topic_level"]

#: The payload schemas (see the module docstring).
FRAME_SCHEMA = "witskit/frame/1"
VALUE_SCHEMA = "witskit/value/1"

#: How long one batch may take to be acknowledged before the write fails (and is retried from the
#: spool): a broker answers in milliseconds; ten seconds is an outage, not a slow broker.
DEFAULT_PUBLISH_TIMEOUT = 10.0

#: Messages in flight (sent, PUBACK not yet received) per connection: enough to publish a batch of
#: a busy rig in a few round trips; paho's default of 20 made a 2,000-frame backlog crawl.
_MAX_INFLIGHT = 200

_OPTIONS = (*CONNECTION_OPTIONS, "qos", "retain_latest", "timeout")


def topic_level(text: str | None) -> str:
    """``text`` as one MQTT topic level: ``/``, ``+``, ``#`` and NUL written as ``_``; empty as ``_``."""
    if not text:
        return "_"
    return text.translate({ord("/"): "_", ord("+"): "_", ord("#"): "_", 0: "_"})


def _record(frame: DecodedFrame) -> int:
    for code in frame.codes:
        if code != "1984" and code[:2].isdigit():
            return int(code[:2])
    return 0


def frame_message(frame: DecodedFrame) -> dict[str, Any]:
    """The ``witskit/frame/1`` payload of a frame (see the module docstring)."""
    values: dict[str, Any] = {}
    units: dict[str, str] = {}
    codes: dict[str, str] = {}
    for code, value in frame.items():
        symbol = frame.symbol(code)
        name = symbol.name or code
        if name in values:
            continue
        values[name] = value
        units[name] = frame.unit(code)
        codes[name] = code
    return {
        "schema": FRAME_SCHEMA,
        "source": frame.source,
        "record": _record(frame),
        "time": frame.timestamp.isoformat(),
        "received": frame.received_at.isoformat(),
        "values": values,
        "units": units,
        "codes": codes,
    }


def _parse(url: str, options: dict[str, Any], *, build: bool) -> tuple[str, dict[str, Any], URLOptions]:
    query = URLOptions(url, _OPTIONS)
    parts = urlsplit(url)
    prefix = unquote(parts.path).strip("/")
    if not prefix:
        raise UsageError(f"{query.url}: names no topic prefix (expected {parts.scheme}://broker:1883/rigs)")
    if "+" in prefix or "#" in prefix or "#" in url:
        raise UsageError(f"{query.url}: the topic prefix {prefix!r} has a wildcard (+ or #)")
    settings = connection_settings(url, query, options, build=build)
    return prefix, settings, query


def check_mqtt_url(url: str) -> None:
    """Check an MQTT sink URL and its options (nothing is opened, no certificate is read); without
    the ``mqtt`` extra installed, say so now rather than at the first write."""
    _, _, query = _parse(url, {}, build=False)
    require_aiomqtt(query.url)
    query.choice("qos", {"1": 1, "2": 2})
    query.flag("retain_latest")
    query.seconds("timeout")


class MQTTSink(Sink):
    """Publish each frame to an MQTT broker; acknowledged to the spool after PUBACK (module docstring).

    Keyword options: ``username``, ``password``, ``key_password`` (kept out of the URL and never
    shown). Query options: ``qos`` (1, the default, or 2; QoS 0 has no acknowledgement to wait for,
    so it is refused), ``retain_latest=1``, ``timeout`` (seconds for a batch's PUBACKs), and the
    connection's (:data:`~witskit.transport.mqtt.CONNECTION_OPTIONS`).
    """

    def __init__(self, url: str, **options: Any) -> None:
        options = dict(options)
        self.prefix, self.settings, query = _parse(url, options, build=True)
        if options:
            raise UsageError(f"{redact_url(url)}: unknown option(s) {', '.join(sorted(options))} for mqtt://")
        self.name = redact_url(url)
        self.qos = query.choice("qos", {"1": 1, "2": 2}) or 1
        self.retain_latest = bool(query.flag("retain_latest"))
        self.timeout = query.seconds("timeout") or DEFAULT_PUBLISH_TIMEOUT
        #: Messages the broker acknowledged, since the start.
        self.published = 0
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    def counters(self) -> dict[str, int]:
        """Counters for metrics: ``messages_published``."""
        return {"messages_published": self.published}

    def messages(self, batch: Sequence[DecodedFrame]) -> list[tuple[str, bytes, bool]]:
        """(topic, payload, retain) of every message a batch is published as."""
        out: list[tuple[str, bytes, bool]] = []
        last: dict[tuple[str | None, int], DecodedFrame] = {}
        for frame in batch:
            message = frame_message(frame)
            topic = f"{self.prefix}/{topic_level(frame.source)}/{message['record']:02d}"
            out.append((topic, json.dumps(message, separators=(",", ":")).encode(), False))
            last[(frame.source, message["record"])] = frame
        if self.retain_latest:
            for frame in last.values():
                message = frame_message(frame)
                for name, value in message["values"].items():
                    payload = {
                        "schema": VALUE_SCHEMA,
                        "time": message["time"],
                        "value": value,
                        "unit": message["units"][name],
                        "code": message["codes"][name],
                    }
                    topic = f"{self.prefix}/{topic_level(frame.source)}/latest/{topic_level(name)}"
                    out.append((topic, json.dumps(payload, separators=(",", ":")).encode(), True))
        return out

    async def _connected(self) -> Any:
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            client = open_client(
                self.name, self.settings, timeout=self.timeout, max_inflight_messages=_MAX_INFLIGHT
            )
            with map_mqtt_errors(self.name):
                await stack.enter_async_context(client)
            self._stack, self._client = stack, client
        return self._client

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Publish the batch; return once the broker has acknowledged every message."""
        messages = self.messages(batch)
        try:
            client = await self._connected()
            with map_mqtt_errors(self.name):
                async with asyncio.timeout(self.timeout):
                    await asyncio.gather(
                        *(
                            client.publish(topic, payload, qos=self.qos, retain=retain)
                            for topic, payload, retain in messages
                        )
                    )
        except BaseException:
            await self._disconnect()  # the next write connects again and publishes the batch again
            raise
        self.published += len(messages)

    async def _disconnect(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def aclose(self) -> None:
        """Disconnect from the broker."""
        await self._disconnect()
