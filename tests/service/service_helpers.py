"""Helpers of the service tests: settings, role users, a running service, a live server in a thread.

Nothing is mocked: the service opens its store (migrated), its accounts and its pipeline exactly
as ``witskit run`` does. Only the Argon2 cost is lowered (the algorithm stays Argon2id), so that a
test creating five users does not spend a second hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from witskit.config import PipelineConfig, SourceConfig, WitsConfig
from witskit.monitoring.metrics import WitsMetrics
from witskit.security.auth import User
from witskit.security.rbac import Role

SECRET = "test-signing-key-" + "k" * 50  # 67 bytes: enough even for HS512 (the matrix tries it)
PASSWORD = "correct horse battery staple"

#: One user per role, plus one with no role at all.
ROLE_USERS: dict[str, list[str]] = {
    "super": [Role.SUPER_ADMIN.value],
    "admin": [Role.ADMIN.value],
    "operator": [Role.OPERATOR.value],
    "viewer": [Role.VIEWER.value],
    "nobody": [],
}


def in_ci() -> bool:
    """True under CI=true: nothing may be skipped."""
    return os.environ.get("CI", "").strip().lower() == "true"


def make_config(tmp: Path, **overrides: Any) -> WitsConfig:
    """Settings for a service in ``tmp`` (the environment and .env are not consulted)."""
    values: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": f"sqlite:///{tmp / 'wits.db'}",
        "jwt_secret": SECRET,
        "metrics_enabled": True,
        "log_format": "json",
    }
    values.update(overrides)
    return WitsConfig(_env_file=None, **values)  # type: ignore[call-arg]


def fast_hashing(service: Any) -> None:
    """Cheap Argon2id parameters for tests (the production ones cost ~50 ms per hash)."""
    service.identity.auth.pwd_context = PasswordHash(
        (Argon2Hasher(time_cost=1, memory_cost=64, parallelism=1),)
    )


def sim_pipeline(rate: float = 20.0) -> PipelineConfig:
    """One simulated rig, ``rate`` frames per second, named rig-1."""
    return PipelineConfig(sources=[SourceConfig(url=f"sim://rig-1?rate={rate}&records=1", name="rig-1")])


def static_app() -> Any:
    """The app's routes, built without a service (for enumerating them at collection time)."""
    from witskit.service.app import create_app

    return create_app(SimpleNamespace(config=SimpleNamespace(metrics_enabled=True)))  # type: ignore[arg-type]


@dataclass
class Running:
    """An open service, its HTTP client, and a token per role."""

    service: Any
    client: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of a role's user."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def add_role_users(service: Any) -> dict[str, str]:
    """Create the ROLE_USERS and return an access token for each."""
    tokens = {}
    for name, roles in ROLE_USERS.items():
        await service.identity.add_user(name, PASSWORD, roles, actor="test", client="local")
        tokens[name] = service.identity.auth.create_access_token(User(username=name, roles=roles))
    return tokens


@contextlib.asynccontextmanager
async def running_service(
    config: WitsConfig, *, ingest: bool, pipeline: PipelineConfig | None = None, users: bool = True
) -> AsyncIterator[Running]:
    """A service (with the role users), its pipeline running when ``ingest``, and an ASGI client."""
    from witskit.service.runtime import Service

    service = await Service.open(config, ingest=ingest, pipeline=pipeline, metrics=WitsMetrics())
    fast_hashing(service)
    task = asyncio.create_task(service.run_pipeline()) if ingest else None
    try:
        tokens = await add_role_users(service) if users else {}
        transport = httpx.ASGITransport(app=service.app, client=("192.0.2.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://witskit.test") as client:
            yield Running(service, client, tokens)
    finally:
        service.stop()
        if task is not None:
            await task
        await service.aclose()


# A real server in another thread (for synchronous clients such as schemathesis) ---------------
@dataclass
class LiveServer:
    """A service served by real uvicorn on 127.0.0.1, port 0, in a thread with its own loop."""

    url: str
    admin_token: str
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread


@contextlib.contextmanager
def live_server(
    config: WitsConfig, *, ingest: bool, pipeline: PipelineConfig | None = None
) -> Iterator[LiveServer]:
    """Run :func:`witskit.service.runtime.serve` in a thread; yield once it listens.

    Argon2id runs with cheap parameters meanwhile (the server builds its own AuthManager).
    """
    import functools

    import witskit.security.auth as auth_module
    from witskit.service.runtime import Bound, serve

    original_hasher = auth_module.Argon2Hasher
    auth_module.Argon2Hasher = functools.partial(  # type: ignore[misc]
        original_hasher, time_cost=1, memory_cost=64, parallelism=1
    )

    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        stop = asyncio.Event()
        box["stop"] = stop

        def on_ready(bound: Bound) -> None:
            box["bound"] = bound
            ready.set()

        try:
            box["status"] = loop.run_until_complete(
                serve(
                    config,
                    pipeline=pipeline,
                    ingest=ingest,
                    host="127.0.0.1",
                    port=0,
                    metrics=WitsMetrics(),
                    on_ready=on_ready,
                    stop=stop,
                    handle_signals=False,
                )
            )
        except BaseException as exc:
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="witskit-live-server", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the server did not start"
    finally:
        auth_module.Argon2Hasher = original_hasher  # type: ignore[misc]
    if "error" in box:
        raise box["error"]
    bound = box["bound"]
    assert bound.admin_credentials is not None
    name, password = bound.admin_credentials
    token = httpx.post(
        f"{bound.url}/api/v1/auth/token", data={"username": name, "password": password}
    ).json()["access_token"]
    server = LiveServer(bound.url, token, box["loop"], box["stop"], thread)
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(server.stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
        assert box.get("status") == 0
