"""The side app: ``/livez``, ``/readyz`` and ``/metrics`` without a credential, on ports of their own.

``WITS_METRICS_PORT`` (when it is not the API port) serves the Prometheus exposition and both
probes, for a scraper on an internal network (:func:`create_metrics_app`).

``WITS_HEALTH_CHECK_PORT`` serves ``/livez`` and ``/readyz`` alone (:func:`create_health_app`).
Some orchestrators probe a port that carries nothing else (a Kubernetes pod whose API port is
behind a mesh sidecar, a load balancer whose health checks come from another network). When the
setting is non-zero and names neither the API port nor the metrics port (both already answer
these paths), :func:`witskit.service.server.serve` listens on it too, on the same ``WITS_HOST``.
``0`` (the default) turns it off. A port that cannot be bound stops the start with an error that
names the setting: an orchestrator probing a port nobody listens on would restart the service
forever.

Both are the same small Starlette app, over the same
:class:`~witskit.monitoring.health.HealthMonitor` as the API's: the same JSON and status codes as
the API's public ``/livez`` and ``/readyz`` (check names and states, never their messages); any
other path is 404.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from witskit.monitoring.health import HealthMonitor
from witskit.service.routes.ops import LIVE, readiness

__all__ = ["Probed", "create_health_app", "create_metrics_app"]


class Probed(Protocol):
    """What the side app reads: the health checks and the metrics (an ``AppContext`` has both)."""

    @property
    def health(self) -> HealthMonitor:
        """The checks behind ``/readyz``."""
        ...

    def render_metrics(self) -> bytes:
        """The Prometheus exposition text."""
        ...


def _side_app(probed: Probed, *, metrics: bool) -> Starlette:
    async def livez(request: Request) -> Response:
        return JSONResponse(LIVE)

    async def readyz(request: Request) -> Response:
        return await readiness(probed.health)

    async def exposition(request: Request) -> Response:
        return Response(probed.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/livez", livez), Route("/readyz", readyz)]
    if metrics:
        routes.insert(0, Route("/metrics", exposition))
    return Starlette(routes=routes)


def create_metrics_app(probed: Probed) -> Starlette:
    """``/metrics``, ``/livez`` and ``/readyz`` without authentication, for ``WITS_METRICS_PORT``."""
    return _side_app(probed, metrics=True)


def create_health_app(probed: Probed) -> Starlette:
    """``/livez`` and ``/readyz`` without authentication, for ``WITS_HEALTH_CHECK_PORT``."""
    return _side_app(probed, metrics=False)
