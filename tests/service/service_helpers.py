"""Helpers of the service tests: settings, role users, a running service, ``serve()`` on a real
socket (in the test's loop or in a thread of its own), and ``python -m witskit`` as a process.

Nothing is mocked: the service opens its store (migrated), its accounts and its pipeline exactly
as ``witskit run`` does. Only the Argon2 cost is lowered (``support.auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from support.auth import fast_argon2_everywhere, fast_hashing, login, login_async
from witskit.config import PipelineConfig, SourceConfig, WitsConfig
from witskit.monitoring.metrics import WitsMetrics
from witskit.security.auth import User
from witskit.security.rbac import Role

if TYPE_CHECKING:
    from witskit.service.server import Bound

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


def reset_logging() -> None:
    """Undo ``configure_logging()``: witskit's root handler removed, the root level and structlog reset."""
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "witskit"]
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def sim_pipeline(rate: float = 20.0) -> PipelineConfig:
    """One simulated rig, ``rate`` frames per second, named rig-1."""
    return PipelineConfig(sources=[SourceConfig(url=f"sim://rig-1?rate={rate}&records=1", name="rig-1")])


def static_app() -> Any:
    """The app's routes, built without a service (for enumerating them at collection time)."""
    from witskit.service.app import create_app

    return create_app(SimpleNamespace(config=WitsConfig(_env_file=None, metrics_enabled=True)))  # type: ignore[arg-type, call-arg]


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


# A real server: serve() through uvicorn on 127.0.0.1, port 0 ------------------------------------
@contextlib.asynccontextmanager
async def serving(
    config: WitsConfig, *, pipeline: PipelineConfig | None = None, ingest: bool = True, **options: Any
) -> AsyncIterator[Bound]:
    """:func:`witskit.service.server.serve` until the block ends; yields where it listens.

    ``options`` are further arguments of ``serve()`` (``live_interval``). A start that fails raises
    what stopped it; the stop at the end must give status 0.
    """
    from witskit.service.server import serve

    ready = asyncio.Event()
    stop = asyncio.Event()
    box: dict[str, Bound] = {}

    def on_ready(bound: Bound) -> None:
        box["bound"] = bound
        ready.set()

    task = asyncio.create_task(
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
            **options,
        )
    )
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        stop.set()
        await asyncio.gather(waiter, return_exceptions=True)
        await task  # raises what stopped the start
        raise AssertionError("serve() returned without listening")
    try:
        yield box["bound"]
    finally:
        stop.set()
        status = await asyncio.wait_for(task, 30)
    assert status == 0


async def admin_auth(bound: Bound) -> dict[str, str]:
    """The Authorization header of the administrator that ``serve()`` created at its first start."""
    assert bound.admin_credentials is not None
    name, password = bound.admin_credentials
    return {"Authorization": f"Bearer {await login_async(bound.url, name, password)}"}


# The same in another thread (for synchronous clients such as schemathesis) --------------------
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
    """Run :func:`serving` in a thread; yield once it listens.

    Argon2id runs with cheap parameters meanwhile (the server builds its own AuthManager).
    """
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve_until_stopped() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = stop = asyncio.Event()
        async with serving(config, pipeline=pipeline, ingest=ingest) as bound:
            box["bound"] = bound
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            asyncio.run(serve_until_stopped())
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="witskit-live-server", daemon=True)
    with fast_argon2_everywhere():
        thread.start()
        assert ready.wait(30), "the server did not start"
    if "error" in box:
        raise box["error"]
    bound = box["bound"]
    assert bound.admin_credentials is not None
    name, password = bound.admin_credentials
    server = LiveServer(bound.url, login(bound.url, name, password), box["loop"], box["stop"], thread)
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(server.stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
        if "error" in box:
            raise box["error"]  # the stop did not end cleanly (status 0)
