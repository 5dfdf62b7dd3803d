"""The alarms of a running service: the live stage, the active alarms, acknowledgements, and the
rules and webhooks added through the API.

``witskit run`` always runs an :class:`~witskit.pipeline.alarms.AlarmStage` (one more sink after
the spool, so it never blocks ingest): with the pipeline file's ``alarms:`` rules and webhooks,
and those added through the API (kept in the ``alarm_settings`` table, applied again at the next
start). Its events go to the service's database (the alarm history), to the live hub (the
WebSocket's ``alarm`` messages) and to the webhooks. :class:`AlarmDesk` is what the routes get.

A rule added through the API is checked exactly as the pipeline file's (the same function, the
same messages), among the rules already running (a name used twice is refused). A webhook added
through the API gets the pipeline file's checks too, and more, because whoever calls the API is
not whoever writes the pipeline file: its URL may not carry credentials, its key is given in the
request (never the name of a server environment variable: that would let a caller have the
service sign with any secret it holds), and it may only reach public addresses, checked when added
and again at every attempt (see :mod:`witskit.pipeline.webhooks`), unless
``WITS_ALARM_WEBHOOKS_PRIVATE`` is set for a site whose receivers live on its own network.
Secrets are never returned, logged or audited.

``witskit serve`` (no pipeline) has a desk too: the history and acknowledgements work (they are in
the database), the active alarms are read from the history, and rules cannot be changed there
(409: the process that runs them is ``witskit run``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from witskit.analytics.alarms import AlarmEngine, AlarmEvent, AlarmRule, parse_rules, rule_problems
from witskit.analytics.rigstate import RigStateClassifier, RigStateSettings
from witskit.config import PipelineConfig, WitsConfig
from witskit.errors import UsageError, WitsKitError
from witskit.pipeline.alarms import AlarmStage, alarm_stage
from witskit.pipeline.webhooks import WebhookSender, WebhookTarget, address_problem, resolve_public
from witskit.protocol import DecodedFrame
from witskit.service.alarm_settings import RULE, WEBHOOK, AlarmSettingStore
from witskit.storage.alarm_events import MAX_HISTORY, AlarmEventStore, StoredAlarmEvent
from witskit.symbols import SymbolTable

__all__ = [
    "MAX_API_RULES",
    "MAX_API_WEBHOOKS",
    "AckResult",
    "ActiveAlarm",
    "AlarmDesk",
    "AlarmEventNotFound",
    "AlarmProblems",
    "AlarmRuleNotFound",
    "AlreadyAcknowledged",
    "NotRunningAlarms",
    "RigStates",
    "RuleInPipelineFile",
]

log = logging.getLogger("witskit.service.alarms")

#: Rules the API may add: every rule runs on every frame of every rig, so their number is the
#: cost of the stage (200 rules on 1000 rigs at 1 Hz is 200,000 evaluations a second).
MAX_API_RULES: Final = 200
#: Webhooks the API may add: each has a worker, a queue of up to ``queue_size`` events and a
#: request per event.
MAX_API_WEBHOOKS: Final = 20
#: Seconds a webhook's host name may take to resolve when it is added (the request waits for it).
_RESOLVE_TIMEOUT: Final = 5.0
#: Seconds an acknowledgement waits for a firing the stage has announced but not stored yet (it
#: stores the events of a batch at the batch's end, a fraction of a second later).
_STORE_WAIT: Final = 2.0
#: Webhook queue size when the pipeline file has no ``alarms:`` section to say it.
_QUEUE_SIZE: Final = 1000


class NotRunningAlarms(UsageError):
    """This process does not run the alarm rules (``witskit serve``)."""


class AlarmProblems(UsageError):
    """A rule or webhook from the API was refused: every problem, as (field, message)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """An alarm that has fired and not cleared, and who acknowledged it."""

    event: AlarmEvent | StoredAlarmEvent
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@dataclass(frozen=True, slots=True)
class AckResult:
    """The answer to an acknowledgement: the event, who acknowledged it and when, and whether it
    was this call (``False``: the same caller had already)."""

    event: StoredAlarmEvent
    by: str
    at: datetime
    new: bool


class RigStates:
    """``state_of`` for the alarm stage: the rig state of each frame from one
    :class:`~witskit.analytics.rigstate.RigStateClassifier` per source.

    Only while a rule needs it (a ``pit_gain`` rule asks whether the rig is tripping); otherwise
    it costs nothing. ``unknown`` (a classifier still learning the rig) gives None, so the engine
    falls back on its tripping heuristic. A source's classifier has the settings ``settings_for``
    gives (the service passes its live analytics', so a source's ``rig_state:`` of the pipeline
    file holds for its alarms too); without it, ``RigStateSettings(metric=metric)``.
    """

    def __init__(
        self,
        engine: AlarmEngine,
        metric: bool,
        settings_for: Callable[[str], RigStateSettings] | None = None,
    ) -> None:
        self.engine = engine
        self._default = RigStateSettings(metric=metric)
        self._settings_for = settings_for
        self._by_source: dict[str, RigStateClassifier] = {}

    def use_settings(self, settings_for: Callable[[str], RigStateSettings]) -> None:
        """Take each source's settings from ``settings_for`` from now on (classifiers start afresh)."""
        self._settings_for = settings_for
        self._by_source.clear()

    def classifier(self, source: str) -> RigStateClassifier:
        """The classifier of ``source``, made with its settings on first use."""
        found = self._by_source.get(source)
        if found is None:
            settings = self._settings_for(source) if self._settings_for is not None else self._default
            found = self._by_source[source] = RigStateClassifier(settings)
        return found

    def __call__(self, frame: DecodedFrame) -> str | None:
        if not self.engine.needs_rig_state:
            return None
        state = self.classifier(frame.source or "default").feed(frame)
        if state is None or state.value == "unknown":
            return None
        return state.value


def _shown_url(url: str) -> str:
    """A webhook URL for lists, logs and the audit: no credentials, no query (it may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(slots=True)
class _Hook:
    name: str | None  # None: the pipeline file's
    url: str
    target: WebhookTarget


class AlarmDesk:
    """The alarms of one service (see the module docstring)."""

    def __init__(
        self,
        config: WitsConfig,
        *,
        settings: AlarmSettingStore,
        events: AlarmEventStore,
        stage: AlarmStage | None = None,
        file_rules: Sequence[Any] = (),
        symbols: SymbolTable | None = None,
        queue_size: int = _QUEUE_SIZE,
        publish: Callable[[AlarmEvent], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.events = events
        self.stage = stage
        self.symbols = symbols
        self.queue_size = queue_size
        self.publish = publish
        self._file_rules: list[dict[str, Any]] = [dict(r) for r in file_rules if isinstance(r, Mapping)]
        self._api_rules: dict[str, dict[str, Any]] = {}
        self._rule_meta: dict[str, tuple[datetime, str | None]] = {}
        self._hooks: list[_Hook] = []
        self._active: dict[tuple[str, str], AlarmEvent] = {}
        self._lock = asyncio.Lock()
        if stage is not None:
            stage.on_event = self.on_event
            if stage.webhooks is not None:
                self._hooks = [_Hook(None, t.url, t) for t in stage.webhooks.targets]

    # Building -------------------------------------------------------------------------------
    @classmethod
    def for_pipeline(
        cls,
        config: WitsConfig,
        plan: PipelineConfig,
        *,
        settings: AlarmSettingStore,
        events: AlarmEventStore,
        symbols: SymbolTable | None = None,
        publish: Callable[[AlarmEvent], None] | None = None,
    ) -> AlarmDesk:
        """The desk of ``witskit run``: a stage with the plan's rules and webhooks (if any),
        writing to ``events``, its rig states from a classifier per source."""
        stage = alarm_stage(plan)
        if stage is None:
            stage = AlarmStage(AlarmEngine([]))
        stage.store_url = None
        stage._store = events  # the service's database, through the pool the API reads from
        stage._owns_store = False
        stage.state_of = RigStates(stage.engine, plan.decoder.metric)
        alarms = plan.alarms
        return cls(
            config,
            settings=settings,
            events=events,
            stage=stage,
            file_rules=alarms.rules if alarms is not None else (),
            symbols=symbols,
            queue_size=alarms.queue_size if alarms is not None else _QUEUE_SIZE,
            publish=publish,
        )

    def use_rig_state_settings(self, settings_for: Callable[[str], RigStateSettings]) -> None:
        """Classify each source's rig state for the rules with ``settings_for(source)`` (the live
        analytics' settings: a source's ``rig_state:`` of the pipeline file)."""
        if self.stage is not None and isinstance(self.stage.state_of, RigStates):
            self.stage.state_of.use_settings(settings_for)

    @property
    def runs_rules(self) -> bool:
        """True when this process evaluates the rules (``witskit run``)."""
        return self.stage is not None

    def _stage(self) -> AlarmStage:
        if self.stage is None:
            raise NotRunningAlarms(
                "this process does not run the alarm rules (witskit serve): change them on witskit run"
            )
        return self.stage

    # Live events ----------------------------------------------------------------------------
    def on_event(self, event: AlarmEvent) -> None:
        """Called by the stage for each firing and clearing: the active set, then the live hub."""
        key = (event.rule, event.source)
        if event.state == "fired":
            self._active[key] = event
        else:
            self._active.pop(key, None)
        if self.publish is not None:
            self.publish(event)

    async def active(self) -> list[ActiveAlarm]:
        """The alarms that fired and have not cleared, most severe first, then newest first."""
        if self.stage is not None:
            current: list[AlarmEvent | StoredAlarmEvent] = list(self._active.values())
        else:
            current = self._active_from_history(await self.events.history(limit=MAX_HISTORY))
        acks = await self._acknowledgements([e.event_id for e in current])
        rank = {"critical": 0, "warning": 1, "info": 2}
        current.sort(key=lambda e: (rank.get(e.severity, 3), -e.time.timestamp(), e.rule, e.source))
        return [ActiveAlarm(e, *acks.get(e.event_id, (None, None))) for e in current]

    @staticmethod
    def _active_from_history(
        history: Sequence[StoredAlarmEvent],
    ) -> list[AlarmEvent | StoredAlarmEvent]:
        newest: dict[tuple[str, str], StoredAlarmEvent] = {}
        for event in history:  # newest first: the first of each (rule, source) is its state
            newest.setdefault((event.rule, event.source), event)
        return [e for e in newest.values() if e.state == "fired"]

    async def _acknowledgements(self, ids: Sequence[str]) -> dict[str, tuple[datetime | None, str | None]]:
        found: dict[str, tuple[datetime | None, str | None]] = {}
        for event_id in ids:  # a handful: the active alarms
            stored = await self.events.get(event_id)
            if stored is not None:
                found[event_id] = (stored.acknowledged_at, stored.acknowledged_by)
        return found

    async def history(
        self,
        *,
        source: str | None = None,
        rule: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[StoredAlarmEvent]:
        """Stored events, newest first."""
        return await self.events.history(source=source, rule=rule, start=start, end=end, limit=limit)

    async def acknowledge(self, event_id: str, *, by: str) -> AckResult:
        """Acknowledge a firing. One caller wins a race; :class:`AlreadyAcknowledged` for the others.

        The database decides (``UPDATE ... WHERE acknowledged_at IS NULL``), so two processes
        serving the same database cannot both win. Acknowledging again as the same caller is not
        an error (the first acknowledgement stands).
        """
        event = await self.events.get(event_id)
        if event is None and any(e.event_id == event_id for e in self._active.values()):
            # Fired in the batch being evaluated: the stage stores it at the batch's end.
            for _ in range(int(_STORE_WAIT / 0.1)):
                await asyncio.sleep(0.1)
                event = await self.events.get(event_id)
                if event is not None:
                    break
        if event is None:
            raise AlarmEventNotFound(f"no alarm event {event_id!r}")
        if event.state != "fired":
            raise UsageError(f"alarm event {event_id} is a clearing: only a firing is acknowledged")
        won = await self.events.acknowledge(event_id, by=by)
        stored = await self.events.get(event_id)
        if stored is None or stored.acknowledged_at is None or stored.acknowledged_by is None:
            raise AlarmEventNotFound(f"no alarm event {event_id!r}")  # removed meanwhile
        if not won and stored.acknowledged_by != by:
            raise AlreadyAcknowledged(stored)
        return AckResult(stored, stored.acknowledged_by, stored.acknowledged_at, won)

    # Rules ----------------------------------------------------------------------------------
    def rules(self) -> list[dict[str, Any]]:
        """Every rule: the pipeline file's, then the API's, each as its definition with its origin."""
        out: list[dict[str, Any]] = [
            {
                "name": r.get("name"),
                "origin": "pipeline_file",
                "definition": r,
                "created_at": None,
                "created_by": None,
            }
            for r in self._file_rules
        ]
        for name, rule in self._api_rules.items():
            created_at, created_by = self._rule_meta.get(name, (None, None))
            out.append(
                {
                    "name": name,
                    "origin": "api",
                    "definition": rule,
                    "created_at": created_at,
                    "created_by": created_by,
                }
            )
        return out

    def _raw_rules(self) -> list[dict[str, Any]]:
        return [*self._file_rules, *self._api_rules.values()]

    def check_rule(self, rule: Mapping[str, Any]) -> AlarmRule:
        """``rule`` validated among the running rules, as the pipeline file's are.

        The messages are those of ``alarms.rules`` in a pipeline file; the field is ``rule.KEY``.
        """
        existing = self._raw_rules()
        where = f"alarms.rules.{len(existing)}"
        problems = [
            ("rule" + f.removeprefix(where), m)
            for f, m in rule_problems([*existing, dict(rule)], symbols=self.symbols)
            if f == where or f.startswith(where + ".")
        ]
        if problems:
            raise AlarmProblems(problems)
        return parse_rules([dict(rule)], symbols=self.symbols)[0]

    def _apply_rules(self) -> None:
        stage = self._stage()
        rules = parse_rules(self._raw_rules(), symbols=self.symbols)
        before = set(stage.engine.rules)
        stage.engine.set_rules(rules)
        # A removed rule's alarms are forgotten by the engine, and a changed one starts afresh.
        unchanged = {r.name for r in rules if r in before}
        for key, event in list(self._active.items()):
            if event.rule not in unchanged:
                del self._active[key]

    async def add_rule(self, rule: Mapping[str, Any], *, actor: str | None) -> dict[str, Any]:
        """Check, keep and run a rule; :class:`AlarmProblems` lists why it was refused."""
        self._stage()
        async with self._lock:
            if len(self._api_rules) >= MAX_API_RULES:
                raise AlarmProblems([("rule", f"at most {MAX_API_RULES} rules can be added through the API")])
            parsed = self.check_rule(rule)
            body = dict(rule)
            await self.settings.add_alarm_setting(RULE, parsed.name, body, created_by=actor)
            self._api_rules[parsed.name] = body
            self._rule_meta[parsed.name] = (datetime.now(UTC), actor)
            self._apply_rules()
        log.info("alarm rule %s added through the API by %s", parsed.name, actor)
        return next(r for r in self.rules() if r["name"] == parsed.name and r["origin"] == "api")

    async def remove_rule(self, name: str) -> None:
        """Stop and forget a rule added through the API."""
        self._stage()
        async with self._lock:
            if name not in self._api_rules:
                if any(r.get("name") == name for r in self._file_rules):
                    raise RuleInPipelineFile(
                        f"the rule {name!r} is defined in the pipeline file: remove it there"
                    )
                # Kept but not running (it did not pass its checks at the start): forget it.
                if await self.settings.remove_alarm_setting(RULE, name):
                    return
                raise AlarmRuleNotFound(f"no alarm rule {name!r} added through the API")
            await self.settings.remove_alarm_setting(RULE, name)
            del self._api_rules[name]
            self._rule_meta.pop(name, None)
            self._apply_rules()
        log.info("alarm rule %s removed through the API", name)

    # Webhooks -------------------------------------------------------------------------------
    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook, its URL shown without credentials or query, its counters; never its key."""
        return [
            {
                "name": h.name,
                "origin": "api" if h.name is not None else "pipeline_file",
                "url": _shown_url(h.url),
                "sent": h.target.sent,
                "failed": h.target.failed,
                "dropped": h.target.dropped,
                "queued": h.target.queue.qsize(),
            }
            for h in self._hooks
        ]

    async def check_webhook(self, name: str, url: str, secret: str) -> None:
        """The pipeline file's webhook checks, then the API's (see the module docstring)."""
        from witskit.pipeline.build import webhook_problems

        checked = webhook_problems({"url": url, "secret": secret}, "hook", self.config)
        problems = [("webhook" + f.removeprefix("hook"), m) for f, m in checked]
        if any(h.name == name for h in self._hooks):
            problems.append(("webhook.name", f"a webhook named {name!r} already exists"))
        if problems:
            raise AlarmProblems(problems)
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise AlarmProblems(
                [("webhook.url", "must not carry credentials: the secret signs every request")]
            )
        if self.config.alarm_webhooks_private:
            return
        host = parts.hostname or ""
        refused = (
            "; a webhook added through the API may only reach public addresses (set "
            "WITS_ALARM_WEBHOOKS_PRIVATE=true to allow your own network)"
        )
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a name: every address it resolves to must be public
            try:
                async with asyncio.timeout(_RESOLVE_TIMEOUT):
                    await resolve_public(host, parts.port or (443 if parts.scheme == "https" else 80))
            except UsageError as exc:
                raise AlarmProblems([("webhook.url", str(exc) + refused)]) from None
            except TimeoutError:
                message = f"the host {host!r} does not resolve within {_RESOLVE_TIMEOUT:g} s"
                raise AlarmProblems([("webhook.url", message)]) from None
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise AlarmProblems(
                    [("webhook.url", f"the host {host!r} does not resolve ({reason})")]
                ) from None
            return
        problem = address_problem(host)
        if problem is not None:
            raise AlarmProblems([("webhook.url", problem + refused)])

    def _target(self, name: str, body: Mapping[str, Any]) -> WebhookTarget:
        return WebhookTarget(
            str(body["url"]),
            str(body["secret"]).encode("utf-8"),
            timeout=float(body.get("timeout_seconds", 10.0)),
            max_attempts=int(body.get("max_attempts", 5)),
            queue_size=self.queue_size,
            public_only=not self.config.alarm_webhooks_private,
            name=name,
        )

    def _attach(self, name: str, body: Mapping[str, Any]) -> None:
        stage = self._stage()
        target = self._target(name, body)
        if stage.webhooks is None:
            stage.webhooks = WebhookSender([target])  # started by the stage's next write
        else:
            stage.webhooks.add(target)
        self._hooks.append(_Hook(name, target.url, target))

    async def add_webhook(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        actor: str | None,
    ) -> dict[str, Any]:
        """Check, keep and start a webhook; :class:`AlarmProblems` lists why it was refused."""
        self._stage()
        async with self._lock:
            if sum(1 for h in self._hooks if h.name is not None) >= MAX_API_WEBHOOKS:
                raise AlarmProblems(
                    [("webhook", f"at most {MAX_API_WEBHOOKS} webhooks can be added through the API")]
                )
            await self.check_webhook(name, url, secret)
            body = {
                "url": url,
                "secret": secret,
                "timeout_seconds": timeout_seconds,
                "max_attempts": max_attempts,
            }
            await self.settings.add_alarm_setting(WEBHOOK, name, body, created_by=actor)
            self._attach(name, body)
        log.info("alarm webhook %s (%s) added through the API by %s", name, _shown_url(url), actor)
        return next(h for h in self.webhooks() if h["name"] == name)

    async def remove_webhook(self, name: str) -> None:
        """Stop and forget a webhook added through the API (what it had queued is dropped)."""
        stage = self._stage()
        async with self._lock:
            hook = next((h for h in self._hooks if h.name == name), None)
            if hook is None:
                if await self.settings.remove_alarm_setting(WEBHOOK, name):
                    return  # kept but not running (it could not be restored): forgotten
                raise AlarmRuleNotFound(f"no alarm webhook {name!r} added through the API")
            await self.settings.remove_alarm_setting(WEBHOOK, name)
            self._hooks.remove(hook)
            if stage.webhooks is not None:
                await stage.webhooks.remove(hook.target)

    # Start ----------------------------------------------------------------------------------
    async def restore(self) -> None:
        """Apply the rules and webhooks kept in the database (after the pipeline file's).

        One that no longer passes its checks (a pipeline file now has a rule by that name, an
        overlay that defined its code is gone) is logged and left out; the others run.
        """
        if self.stage is None:
            return
        async with self._lock:
            for kept in await self.settings.list_alarm_settings(RULE):
                try:
                    self.check_rule(kept.body)
                except AlarmProblems as exc:
                    log.error("alarm rule %s kept in the database is not applied: %s", kept.name, exc)
                    continue
                self._api_rules[kept.name] = kept.body
                self._rule_meta[kept.name] = (kept.created_at, kept.created_by)
            self._apply_rules()
            for kept in await self.settings.list_alarm_settings(WEBHOOK):
                if any(h.name == kept.name for h in self._hooks):
                    continue
                try:
                    self._attach(kept.name, kept.body)
                except (KeyError, ValueError, WitsKitError) as exc:
                    log.error("alarm webhook %s kept in the database is not applied: %s", kept.name, exc)
        if self._api_rules or any(h.name for h in self._hooks):
            log.info(
                "alarm rules restored: %d from the API; webhooks from the API: %d",
                len(self._api_rules),
                sum(1 for h in self._hooks if h.name is not None),
            )


class AlarmEventNotFound(UsageError):
    """No alarm event by that id."""


class AlarmRuleNotFound(UsageError):
    """No rule (or webhook) by that name was added through the API."""


class RuleInPipelineFile(UsageError):
    """The rule is the pipeline file's: the API cannot remove it."""


class AlreadyAcknowledged(UsageError):
    """Someone else acknowledged the alarm first."""

    def __init__(self, event: StoredAlarmEvent) -> None:
        self.event = event
        at = event.acknowledged_at.isoformat() if event.acknowledged_at is not None else "?"
        super().__init__(f"already acknowledged by {event.acknowledged_by} at {at}")
