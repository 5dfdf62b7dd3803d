"""``witskit run`` with the database down at start: it starts, spools, and writes when it comes.

The database is a real PostgreSQL reached through a loopback port that refuses connections at
start (nothing listens there); later a plain TCP forwarder starts on that port, and the database
"comes up". Nothing received at boot may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from live_helpers import database, free_port, until
from service_helpers import make_config, serving, sim_pipeline

from witskit.storage import Store


@contextlib.asynccontextmanager
async def forwarder(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """A TCP forwarder on 127.0.0.1:port to ``target`` until the block ends."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        writers.extend((writer, up_writer))
        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in writers:
            writer.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """An empty PostgreSQL database (made outside the test's event loop)."""
    with database("postgresql", tmp_path) as url:
        yield url


DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def doc_line() -> re.Pattern[str]:
    """The start-up line docs/pipeline.md shows, as a pattern (URL and reason aside)."""
    text = DOC.read_text(encoding="utf-8").split("## The database down at start", 1)[1]
    shown = text.split("```text\n", 1)[1].split("\n```", 1)[0]
    pattern = re.escape(shown)
    pattern = pattern.replace(re.escape("postgresql://wits@db:5432/wits"), r"\S+")
    pattern = pattern.replace(re.escape("(could not connect to ...)"), r"\(could not connect to .+\)")
    return re.compile(pattern)


async def test_run_with_the_database_down_at_start_ingests_and_writes_when_it_comes(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = urlsplit(postgres_url)
    assert real.hostname is not None
    assert real.port is not None
    port = free_port()  # nothing listens here yet: connections are refused
    down_url = urlunsplit(real._replace(netloc=real.netloc.replace(f":{real.port}", f":{port}")))
    assert down_url != postgres_url
    config = make_config(tmp_path, database_url=down_url, database_timeout=3)
    async with (
        serving(config, pipeline=sim_pipeline(rate=40)) as bound,
        httpx.AsyncClient(base_url=bound.url, timeout=10) as http,
    ):
        said = [r.getMessage() for r in caplog.records if "is not reachable at start" in r.getMessage()]
        assert len(said) == 1
        assert doc_line().fullmatch(said[0]), said[0]
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        checks = {c["name"]: c for c in ready.json()["checks"]}
        assert checks["database"]["status"] == "unhealthy"
        assert "not reachable since the start" in checks["database"]["message"]
        assert "frames wait in the spool" in checks["database"]["message"]
        login = await http.post("/api/v1/auth/token", data={"username": "a", "password": "b"})
        assert login.status_code == 503  # the accounts live in the database too
        await asyncio.sleep(1.0)  # frames arrive and are spooled meanwhile
        async with forwarder(port, (real.hostname, real.port)):

            async def is_ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await until(is_ready, timeout=30)
            store = await Store.open(postgres_url, migrate=False)
            try:

                async def stored() -> list[int]:
                    rows = store.query(source="rig-1", codes=["0104"])
                    values = sorted({int(r.value) async for r in rows})  # type: ignore[arg-type]
                    return values if len(values) >= 60 else []

                sqids = await until(stored, timeout=30)
            finally:
                await store.aclose()
    # Nothing received at boot was lost: the rig's sequence numbers are there from the first.
    assert sqids == list(range(sqids[0], sqids[0] + len(sqids)))
    assert sqids[0] <= 1
