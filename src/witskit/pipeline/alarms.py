"""The alarm stage: alarm rules run live on the decoded frames, as one more sink of the pipeline.

As a sink, the stage reads the spool in order like the others, so it sees every frame once, in
order, after a restart too (what was not acknowledged is replayed). For each batch it runs the
:class:`~witskit.analytics.alarms.AlarmEngine`, offers the new events to the webhooks (a bounded
queue each: never waiting) and to ``on_event`` (the live hub, later), then stores them in the
alarm history. A database that fails makes the write fail: the pipeline's breaker and spool keep
the frames as for any sink, and the events already evaluated are kept and stored at the retry,
not evaluated twice. Ingest never waits for the stage: the spool sits before every sink.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from witskit.analytics.alarms import AlarmEngine, AlarmEvent, parse_rules
from witskit.errors import ConfigError
from witskit.pipeline.sinks import Sink
from witskit.pipeline.webhooks import WebhookSender, WebhookTarget
from witskit.protocol import DecodedFrame

if TYPE_CHECKING:
    from witskit.config import AlarmsConfig, PipelineConfig
    from witskit.storage.alarm_events import AlarmEventStore

__all__ = ["AlarmStage", "alarm_stage"]

log = logging.getLogger("witskit.pipeline.alarms")

#: Frames evaluated between two yields to the event loop (~10-20 ms of rules on one core).
_YIELD_EVERY = 500
#: Seconds the stage waits at a stop for queued webhooks to go out.
_WEBHOOK_DRAIN = 5.0


class AlarmStage(Sink):
    """Runs alarm rules on every frame (see the module docstring)."""

    def __init__(
        self,
        engine: AlarmEngine,
        *,
        store_url: str | None = None,
        webhooks: WebhookSender | None = None,
        on_event: Callable[[AlarmEvent], None] | None = None,
        state_of: Callable[[DecodedFrame], str | None] | None = None,
        events: AlarmEventStore | None = None,
    ) -> None:
        """``events``: an open alarm history to write to (its owner closes it), instead of
        opening one on ``store_url``."""
        self.name = "alarms"
        self.engine = engine
        self.store_url = store_url
        self.webhooks = webhooks
        self.on_event = on_event
        self.state_of = state_of
        self.events = 0
        self._store: AlarmEventStore | None = events
        self._owns_store = events is None
        self._unsaved: list[AlarmEvent] = []
        self._ahead = 0  # frames at the head of the next batch already evaluated (a retried write)

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Evaluate the frames not yet seen, send their events, store every unsaved event."""
        if self.webhooks is not None:
            self.webhooks.start()
        skip = min(self._ahead, len(batch))
        state_of = self.state_of
        if not self.engine.rules:  # nothing to evaluate (rules may be added through the API later)
            skip = len(batch)
        for n, frame in enumerate(batch[skip:], 1):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a batch of a fleet is ~0.1 s of work: let the sources read
            for event in self.engine.feed(frame, state_of(frame) if state_of is not None else None):
                self.events += 1
                self._unsaved.append(event)
                # A firing is worth a warning line (witskit stream shows those); a clearing is news.
                level = logging.WARNING if event.state == "fired" else logging.INFO
                log.log(level, "alarm %s (%s)", event.message, event.severity)
                if self.webhooks is not None:
                    self.webhooks.offer(event.to_dict())
                if self.on_event is not None:
                    self.on_event(event)
        self._ahead = max(self._ahead, len(batch))
        if self._unsaved and (self._store is not None or self.store_url is not None):
            if self._store is None:
                from witskit.storage.alarm_events import AlarmEventStore

                assert self.store_url is not None
                self._store = await AlarmEventStore.open(self.store_url)
            await self._store.add(self._unsaved)
        self._unsaved.clear()
        self._ahead = 0

    async def aclose(self) -> None:
        """Send the queued webhooks (a few seconds at most) and close the store."""
        if self.webhooks is not None:
            await self.webhooks.aclose(_WEBHOOK_DRAIN)
        if self._store is not None and self._owns_store:
            await self._store.aclose()
            self._store = None


def _secret(hook_secret: str | None, env: str | None) -> bytes:
    if hook_secret is not None:
        return hook_secret.encode("utf-8")
    return os.environ.get(env or "", "").encode("utf-8")


def _store_url(alarms: AlarmsConfig, plan: PipelineConfig) -> str | None:
    if alarms.store is not None:
        return alarms.store
    from witskit.pipeline.sinks import sink_kind

    for sink in plan.sinks:
        if sink_kind(sink.url) == "sql":
            return sink.url
    return None


def alarm_stage(plan: PipelineConfig) -> AlarmStage | None:
    """The alarm stage a pipeline file asks for (None without an ``alarms:`` section).

    The rules are validated here too (:class:`~witskit.errors.ConfigError`, every problem listed),
    for plans not loaded through ``load_pipeline`` with ``witskit.pipeline.build.plan_problems``.
    """
    alarms = plan.alarms
    if alarms is None:
        return None
    rules = parse_rules(alarms.rules)
    targets = []
    for i, hook in enumerate(alarms.webhooks):
        secret = _secret(hook.secret.get_secret_value() if hook.secret else None, hook.secret_env)
        if not secret:
            raise ConfigError(f"alarms.webhooks.{i}: no secret (set secret_env's variable)")
        targets.append(
            WebhookTarget(
                hook.url,
                secret,
                timeout=hook.timeout_seconds,
                max_attempts=hook.max_attempts,
                queue_size=alarms.queue_size,
            )
        )
    sender = WebhookSender(targets) if targets else None
    return AlarmStage(AlarmEngine(rules), store_url=_store_url(alarms, plan), webhooks=sender)
