"""Every answer of the API (tokens, keys, data, errors) carries ``Cache-Control: no-store``."""

from __future__ import annotations

from service_helpers import PASSWORD, Running


async def test_api_answers_are_not_stored(svc: Running) -> None:
    c = svc.client
    answers = {
        "login": await c.post("/api/v1/auth/token", data={"username": "viewer", "password": PASSWORD}),
        "bad login": await c.post("/api/v1/auth/token", data={"username": "viewer", "password": "nope"}),
        "me": await c.get("/api/v1/auth/me", headers=svc.auth("viewer")),
        "api key": await c.post(
            "/api/v1/api-keys", json={"name": "k", "roles": ["viewer"]}, headers=svc.auth("super")
        ),
        "data": await c.get(
            "/api/v1/data", params={"source": "rig-1", "codes": "DBTM"}, headers=svc.auth("viewer")
        ),
        "export": await c.get(
            "/api/v1/data",
            params={"source": "rig-1", "codes": "DBTM", "format": "csv"},
            headers=svc.auth("viewer"),
        ),
        "sources": await c.get("/api/v1/sources", headers=svc.auth("viewer")),
        "401": await c.get("/api/v1/sources"),
        "403": await c.get("/api/v1/users", headers=svc.auth("viewer")),
        "404": await c.get("/api/v1/no-such-thing"),
        "413": await c.post(
            "/api/v1/auth/logout", content=b"x" * 20000, headers={"Content-Type": "application/json"}
        ),
        "metrics": await c.get("/metrics", headers=svc.auth("viewer")),
        "readyz": await c.get("/readyz"),
    }
    assert answers["login"].status_code == 200
    assert answers["api key"].status_code == 201
    assert answers["413"].status_code == 413
    assert {name: a.headers.get("cache-control") for name, a in answers.items()} == dict.fromkeys(
        answers, "no-store"
    )
    # The dashboard's page keeps its own policy (revalidate, not no-store).
    assert (await c.get("/")).headers["cache-control"] == "no-cache"
