"""``WITS_HEALTH_CHECK_PORT``: ``/livez`` and ``/readyz`` alone, on a port of their own.

Some orchestrators probe a port that carries nothing else (a Kubernetes pod whose API port is
behind a mesh sidecar, a load balancer whose health checks come from another network). When the
setting is non-zero and names neither the API port nor the metrics port (both already answer
these paths), :func:`witskit.service.runtime.serve` listens on it too, on the same ``WITS_HOST``,
with :func:`create_health_app`: the same two routes, the same JSON and status codes, and the same
:class:`~witskit.monitoring.health.HealthMonitor` as the API's. Any other path is 404. No
credential is needed, as on the API port.

``0`` (the default) turns it off. A port that cannot be bound stops the start with an error that
names the setting: an orchestrator probing a port nobody listens on would restart the service
forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from witskit.service.runtime import Service

__all__ = ["SETTING", "create_health_app", "health_port_wanted"]

#: The setting, as errors name it.
SETTING: Final = "WITS_HEALTH_CHECK_PORT"


def health_port_wanted(port: int, *, api_port: int, metrics_port: int | None) -> bool:
    """True when ``port`` needs a listener of its own (non-zero, and not a port already serving)."""
    return port != 0 and port != api_port and port != metrics_port


def create_health_app(service: Service) -> Any:
    """``/livez`` and ``/readyz`` without authentication, for the health port."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from witskit.service.routes.ops import LIVE, readiness

    async def livez(request: Request) -> Response:
        return JSONResponse(LIVE)

    async def readyz(request: Request) -> Response:
        return await readiness(request)

    app = Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz)])
    app.state.witskit = service
    return app
