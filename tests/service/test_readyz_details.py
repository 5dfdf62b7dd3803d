"""``/readyz`` tells the public only the status and the check names; why a check fails (a driver
error naming the database's user and host) only to a caller with ``analytics:view``."""

from __future__ import annotations

import httpx
from service_helpers import Running

from witskit.service.side_app import create_health_app, create_metrics_app
from witskit.storage.errors import DatabaseUnavailable

LEAK = "could not reach postgresql://wits_owner:***@db-primary.internal:5432/wits: timed out"


async def test_readyz_details_need_analytics_view(svc: Running) -> None:
    async def down() -> None:
        raise DatabaseUnavailable(LEAK)

    svc.service.store.ping = down
    public = await svc.client.get("/readyz")
    assert public.status_code == 503
    assert public.json() == {
        "status": "unhealthy",
        "checks": [{"name": "database", "status": "unhealthy", "reason": "not reachable"}],
    }
    for headers in (
        {"Authorization": "Bearer nonsense"},
        svc.auth("nobody"),
        {"X-API-Key": "wk_unknown_key_000"},
    ):
        answer = await svc.client.get("/readyz", headers=headers)
        assert answer.status_code == 503
        assert "db-primary" not in answer.text
        assert "wits_owner" not in answer.text
    detailed = await svc.client.get("/readyz", headers=svc.auth("viewer"))
    assert detailed.status_code == 503
    assert "db-primary.internal" in detailed.json()["checks"][0]["message"]
    # The unauthenticated metrics and health ports answer like the public API.
    for app in (create_metrics_app(svc.service), create_health_app(svc.service)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal") as http:
            answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert "db-primary" not in answer.text
