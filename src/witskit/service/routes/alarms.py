"""``/api/v1/alarms``: the active alarms, their history, acknowledgements, rules and webhooks.

Reading needs ``data:read``; acknowledging ``alarms:ack`` (operators and up; audited with the
actor and the client); rules and webhooks ``alarms:manage`` (admins; audited). See
:mod:`witskit.service.alarms` for what is checked, and ``docs/analytics.md`` ("Alarms") for the
rules themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr

from witskit.analytics.alarms import MAX_NAME, AlarmEvent
from witskit.security.rbac import Permission
from witskit.service.alarms import (
    AlarmDesk,
    AlarmEventNotFound,
    AlarmProblems,
    AlarmRuleNotFound,
    AlreadyAcknowledged,
    NotRunningAlarms,
    RuleInPipelineFile,
)
from witskit.service.audit import Outcome
from witskit.service.deps import AppContext, Context, client_address, guard
from witskit.service.identity import Principal
from witskit.storage.alarm_events import MAX_HISTORY, StoredAlarmEvent

__all__ = ["router"]

router = APIRouter(prefix="/alarms", tags=["alarms"])

_PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    422: {"description": "Refused: every problem as {field, message}, the pipeline file's messages"},
    409: {"description": "This process does not run the rules (witskit serve), or it is the pipeline file's"},
}
#: The longest event id: ours are 32 hex digits.
_EVENT_ID_MAX: Final = 64


class AlarmOut(BaseModel):
    """An alarm event (a firing or a clearing), with its acknowledgement."""

    event_id: str
    rule: str
    rule_type: str
    state: Literal["fired", "cleared"]
    severity: Literal["info", "warning", "critical"]
    source: str
    time: datetime
    code: str
    value: float | None
    unit: str
    message: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @classmethod
    def of(
        cls,
        event: AlarmEvent | StoredAlarmEvent,
        acknowledged_at: datetime | None = None,
        acknowledged_by: str | None = None,
    ) -> AlarmOut:
        """From an engine's or a stored event."""
        if isinstance(event, StoredAlarmEvent):
            acknowledged_at, acknowledged_by = event.acknowledged_at, event.acknowledged_by
        return cls(
            event_id=event.event_id,
            rule=event.rule,
            rule_type=event.rule_type,
            state=event.state,
            severity=event.severity,
            source=event.source,
            time=event.time,
            code=event.code,
            value=event.value,
            unit=event.unit,
            message=event.message,
            acknowledged_at=acknowledged_at,
            acknowledged_by=acknowledged_by,
        )


class AckOut(BaseModel):
    """An acknowledgement: the event, who and when, and whether this call made it."""

    event: AlarmOut
    acknowledged_by: str
    acknowledged_at: datetime
    new: bool = Field(description="false: the caller had acknowledged it already (nothing changed)")


class RuleOut(BaseModel):
    """A rule: its definition as given, and where it comes from."""

    name: str | None
    origin: Literal["pipeline_file", "api"]
    definition: dict[str, Any]
    created_at: datetime | None
    created_by: str | None


class WebhookIn(BaseModel):
    """A webhook to add: each alarm event is POSTed to ``url``, signed with HMAC-SHA256 and ``secret``."""

    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: str = Field(min_length=8, max_length=2048, examples=["https://alerts.example.com/witskit"])
    secret: SecretStr = Field(min_length=16, max_length=512, description="The signing key (never returned)")
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(5, ge=1, le=100)


class WebhookOut(BaseModel):
    """A webhook, its URL without credentials or query, its counters; never its key."""

    name: str | None
    origin: Literal["pipeline_file", "api"]
    url: str
    sent: int
    failed: int
    dropped: int
    queued: int


def _desk(context: AppContext) -> AlarmDesk:
    if context.alarms is None:  # pragma: no cover - every service builds one
        raise HTTPException(status.HTTP_409_CONFLICT, "this process has no alarms")
    return context.alarms


def _actor(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.name if principal is not None else "?"


def _problems(exc: AlarmProblems) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"field": f, "message": m} for f, m in exc.problems]},
        status_code=422,
    )


@router.get("", response_model=list[AlarmOut], summary="Active alarms", **guard(Permission.READ_DATA))
async def active_alarms(context: Context) -> list[AlarmOut]:
    """The alarms that fired and have not cleared: most severe first, then newest first."""
    return [AlarmOut.of(a.event, a.acknowledged_at, a.acknowledged_by) for a in await _desk(context).active()]


@router.get("/history", response_model=list[AlarmOut], summary="Alarm history", **guard(Permission.READ_DATA))
async def alarm_history(
    context: Context,
    source: str | None = Query(default=None, max_length=255),
    rule: str | None = Query(default=None, max_length=255),
    start: Annotated[datetime | None, Query(description="inclusive, ISO 8601 (naive: UTC)")] = None,
    end: Annotated[datetime | None, Query(description="exclusive")] = None,
    limit: int = Query(default=1000, ge=1, le=MAX_HISTORY),
) -> list[AlarmOut]:
    """Firings and clearings, newest first, filtered by source, rule and time range."""
    from datetime import UTC

    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, "end must be after start")
    events = await _desk(context).history(source=source, rule=rule, start=start, end=end, limit=limit)
    return [AlarmOut.of(e) for e in events]


@router.post(
    "/{event_id}/ack",
    response_model=AckOut,
    summary="Acknowledge an alarm",
    **guard(
        Permission.ACK_ALARMS,
        responses={
            404: {"description": "No such event"},
            409: {"description": "Someone else acknowledged it first (who and when)"},
            422: {"description": "The event is a clearing"},
        },
    ),
)
async def acknowledge(
    request: Request,
    context: Context,
    event_id: str = Path(max_length=_EVENT_ID_MAX, pattern=r"^[A-Za-z0-9]+$"),
) -> AckOut:
    """Acknowledge a firing. Again by the same caller: 200, ``new`` false. By another: 409."""
    actor = _actor(request)
    client = client_address(request)
    try:
        result = await _desk(context).acknowledge(event_id, by=actor)
    except AlarmEventNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except AlreadyAcknowledged as exc:
        context.audit.record(
            "alarm.ack",
            outcome=Outcome.FAILURE,
            actor=actor,
            target=event_id,
            client=client,
            reason=str(exc),
        )
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if result.new:
        context.audit.record(
            "alarm.ack",
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=event_id,
            client=client,
            rule=result.event.rule,
            source=result.event.source,
        )
    return AckOut(
        event=AlarmOut.of(result.event),
        acknowledged_by=result.by,
        acknowledged_at=result.at,
        new=result.new,
    )


# Rules -------------------------------------------------------------------------------------------
@router.get("/rules", response_model=list[RuleOut], summary="Alarm rules", **guard(Permission.MANAGE_ALARMS))
async def list_rules(context: Context) -> list[RuleOut]:
    """The pipeline file's rules, then those added through the API."""
    return [RuleOut(**r) for r in _desk(context).rules()]


@router.post(
    "/rules",
    response_model=RuleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an alarm rule",
    **guard(Permission.MANAGE_ALARMS, responses=_PROBLEMS),
)
async def add_rule(
    request: Request,
    context: Context,
    rule: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {
                    "name": "high-spp",
                    "type": "threshold",
                    "code": "0121",
                    "above": 3500,
                    "hysteresis": 100,
                    "for_seconds": 5,
                    "severity": "warning",
                }
            ],
            description="A rule as in a pipeline file's alarms.rules (docs/analytics.md)",
        ),
    ],
) -> RuleOut | JSONResponse:
    """Add a rule: checked as the pipeline file's are, kept across restarts, running at once."""
    actor = _actor(request)
    try:
        added = await _desk(context).add_rule(rule, actor=actor)
    except NotRunningAlarms as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AlarmProblems as exc:
        return _problems(exc)
    context.audit.record(
        "alarm.rule.add",
        outcome=Outcome.SUCCESS,
        actor=actor,
        target=str(added["name"]),
        client=client_address(request),
        type=str(rule.get("type")),
    )
    return RuleOut(**added)


@router.delete(
    "/rules/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an alarm rule",
    **guard(Permission.MANAGE_ALARMS, responses={404: {"description": "No such rule"}, **_PROBLEMS}),
)
async def remove_rule(request: Request, context: Context, name: str = Path(max_length=MAX_NAME)) -> None:
    """Remove a rule added through the API (its active alarms are forgotten)."""
    try:
        await _desk(context).remove_rule(name)
    except (NotRunningAlarms, RuleInPipelineFile) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AlarmRuleNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    context.audit.record(
        "alarm.rule.remove",
        outcome=Outcome.SUCCESS,
        actor=_actor(request),
        target=name,
        client=client_address(request),
    )


# Webhooks ----------------------------------------------------------------------------------------
@router.get(
    "/webhooks",
    response_model=list[WebhookOut],
    summary="Alarm webhooks",
    **guard(Permission.MANAGE_ALARMS),
)
async def list_webhooks(context: Context) -> list[WebhookOut]:
    """Every webhook (the pipeline file's and the API's), without its key."""
    return [WebhookOut(**h) for h in _desk(context).webhooks()]


@router.post(
    "/webhooks",
    response_model=WebhookOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an alarm webhook",
    **guard(Permission.MANAGE_ALARMS, responses=_PROBLEMS),
)
async def add_webhook(request: Request, context: Context, body: WebhookIn) -> WebhookOut | JSONResponse:
    """Add a webhook: the pipeline file's checks, no credentials in the URL, public addresses only
    (unless ``WITS_ALARM_WEBHOOKS_PRIVATE``); kept across restarts."""
    actor = _actor(request)
    try:
        added = await _desk(context).add_webhook(
            body.name,
            body.url,
            body.secret.get_secret_value(),
            timeout_seconds=body.timeout_seconds,
            max_attempts=body.max_attempts,
            actor=actor,
        )
    except NotRunningAlarms as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AlarmProblems as exc:
        return _problems(exc)
    context.audit.record(
        "alarm.webhook.add",
        outcome=Outcome.SUCCESS,
        actor=actor,
        target=body.name,
        client=client_address(request),
        url=str(added["url"]),  # without credentials or query; the key is never recorded
    )
    return WebhookOut(**added)


@router.delete(
    "/webhooks/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an alarm webhook",
    **guard(Permission.MANAGE_ALARMS, responses={404: {"description": "No such webhook"}, **_PROBLEMS}),
)
async def remove_webhook(request: Request, context: Context, name: str = Path(max_length=MAX_NAME)) -> None:
    """Remove a webhook added through the API (what it had queued is dropped)."""
    try:
        await _desk(context).remove_webhook(name)
    except NotRunningAlarms as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AlarmRuleNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    context.audit.record(
        "alarm.webhook.remove",
        outcome=Outcome.SUCCESS,
        actor=_actor(request),
        target=name,
        client=client_address(request),
    )
