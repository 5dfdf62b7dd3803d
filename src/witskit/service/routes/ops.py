"""Operations: ``/livez``, ``/readyz``, ``/metrics`` and the placeholder home page.

``/livez`` says only that the process answers (no dependency checks: a slow database must not get
a healthy process restarted). ``/readyz`` runs the health checks (database reachable, spool below
its limit, sources connected): 200 when healthy or degraded, 503 when unhealthy. Neither needs a
credential, because orchestrators probe without one; they reveal check names and states only. A
caller with ``analytics:view`` also gets each check's message (a driver error may name the
database's host and user, which is nobody else's business).

``/metrics`` on the API port needs ``analytics:view`` (Prometheus can send an API key as a bearer
token). The unauthenticated exposition is on ``WITS_METRICS_PORT``, meant for an internal network
(see ``docs/service.md``). ``WITS_HEALTH_CHECK_PORT`` can add a port that serves ``/livez`` and
``/readyz`` only (:mod:`witskit.service.side_app`), with the same answers.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from witskit.monitoring.health import HealthMonitor, HealthStatus
from witskit.security.rbac import Permission
from witskit.service.deps import Context, client_address, credential_from, guard, principal_for, public

__all__ = ["LIVE", "health_router", "metrics_router", "readiness"]

health_router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["metrics"])

#: What ``/livez`` answers, wherever it is served.
LIVE: Final = {"status": "alive"}


async def readiness(health: HealthMonitor, *, detailed: bool = False) -> JSONResponse:
    """The health checks as JSON; 503 when any is unhealthy.

    Each check's name and status; its ``message`` (a driver error can name the database's host
    and user) only when ``detailed``.
    """
    overall = await health.get_overall_health()
    checks = [_check_answer(c, detailed=detailed) for c in overall.details.get("checks", [])]
    code = (
        status.HTTP_503_SERVICE_UNAVAILABLE
        if overall.status is HealthStatus.UNHEALTHY
        else status.HTTP_200_OK
    )
    return JSONResponse({"status": overall.status.value, "checks": checks}, status_code=code)


def _check_answer(check: dict[str, Any], *, detailed: bool) -> dict[str, Any]:
    answer = {"name": check["name"], "status": check["status"]}
    if check.get("reason") and check["status"] != HealthStatus.HEALTHY.value:
        answer["reason"] = check["reason"]  # public: says why, names no host, user, path or rig
    if detailed:
        answer["message"] = check["message"]
    return answer


@health_router.get("/livez", summary="Liveness", **public())
async def livez() -> dict[str, str]:
    """200 while the process serves requests."""
    return dict(LIVE)


@health_router.get(
    "/readyz",
    summary="Readiness",
    response_model=None,
    **public(responses={503: {"description": "A dependency is unhealthy"}}),
)
async def readyz(request: Request, context: Context) -> JSONResponse:
    """Database reachable, spool below its limit, sources connected.

    Without a credential: the overall status and each check's name and status. With one that
    grants ``analytics:view``: each check's message too (why it is not healthy). A missing or
    refused credential is not an error here (probes send none): it gets the short answer.
    """
    return await readiness(context.health, detailed=await _may_see_details(request, context))


async def _may_see_details(request: Request, context: Context) -> bool:
    credential = credential_from(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if credential is None:
        return False
    scheme, _, value = credential.partition(" ")
    if scheme.lower() == "bearer":
        credential = value.strip()
    try:
        principal = await principal_for(context.identity, credential, client_address(request))
    except HTTPException:
        return False
    return principal.can(Permission.VIEW_ANALYTICS)


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    **guard(Permission.VIEW_ANALYTICS, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}}),
)
async def metrics(context: Context) -> Response:
    """The Prometheus text exposition."""
    return Response(context.render_metrics(), media_type=CONTENT_TYPE_LATEST)
