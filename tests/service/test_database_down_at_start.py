"""``witskit run`` with the database down at start: it starts, spools, and writes when it comes.

The database is a real PostgreSQL reached through a loopback port that refuses connections at
start (nothing listens there); later a plain TCP forwarder starts on that port, and the database
"comes up". Nothing received at boot may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from live_helpers import database, free_port
from service_helpers import make_config, serving, sim_pipeline

from support.waiting import until
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
        assert "not reachable since the start" in checks["database"]["reason"]
        assert "frames wait in the spool" in checks["database"]["reason"]
        assert "message" not in checks["database"]  # the driver error is for analytics:view
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


async def test_a_full_disk_with_the_database_down_resumes_when_the_database_comes(
    tmp_path: Path, postgres_url: str
) -> None:
    """The issue's run, end to end: ``witskit stream`` with its data directory on a 64 KiB disk
    (tmpfs, in a private mount namespace: a real ENOSPC) and its database down. The spool fills
    the disk, the source is paused; when the database comes, the backlog is written, its segment
    deleted, and the rig's data flows again: every sequence number the sender sent is stored."""
    import shutil
    import signal
    import subprocess
    import sys
    import threading

    from witskit.simulator import DrillingSimulator

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is not installed: cannot mount a private tmpfs")
    real = urlsplit(postgres_url)
    assert real.hostname is not None
    assert real.port is not None
    db_port = free_port()
    down_url = urlunsplit(real._replace(netloc=real.netloc.replace(f":{real.port}", f":{db_port}")))
    frames = list(DrillingSimulator(11, records=(1,)).frames(400))  # ~130 KB: twice the disk
    sent = asyncio.Event()

    async def rig(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(frames))
        await writer.drain()
        sent.set()
        await reader.read()  # hold the link open until witskit closes it
        writer.close()

    sender = await asyncio.start_server(rig, "127.0.0.1", 0)
    rig_port = sender.sockets[0].getsockname()[1]
    disk = tmp_path / "small-disk"
    disk.mkdir()
    shell = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"'
    command = [sys.executable, "-m", "witskit", "stream", f"tcp://127.0.0.1:{rig_port}", "--db", down_url]
    proc = subprocess.Popen(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            shell,
            "sh",
            disk,
            *command,
            "-f",
            "jsonl",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "WITS_DATA_DIR": str(disk / "data"), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    err: list[str] = []
    assert proc.stderr is not None
    pump = threading.Thread(target=lambda: err.extend(ln.decode() for ln in iter(proc.stderr.readline, b"")))
    pump.start()
    try:
        try:
            await until(lambda: "spool cannot write" in "".join(err) or proc.poll() is not None, timeout=30)
        except TimeoutError:
            raise AssertionError("".join(err)) from None
        if proc.poll() is not None and ("mount" in "".join(err) or "unshare" in "".join(err)):
            pytest.skip(f"cannot mount a private tmpfs here: {''.join(err).strip()}")
        assert proc.poll() is None, "".join(err)
        text = "".join(err)
        assert "disk full: cannot write spool segment" in text
        assert "free on its disk" in text  # warned at start: 1 GiB allowed, 64 KiB free
        async with forwarder(db_port, (real.hostname, real.port)):
            store = await Store.open(postgres_url)  # migrating is safe alongside witskit's own
            try:

                async def all_stored() -> list[int] | None:
                    rows = store.query(source=f"tcp://127.0.0.1:{rig_port}", codes=["0104"])
                    values = sorted({int(r.value) async for r in rows})  # type: ignore[arg-type]
                    return values if len(values) >= 400 else None

                try:
                    sqids = await until(all_stored, timeout=60)
                except TimeoutError:
                    raise AssertionError("".join(err)) from None
            finally:
                await store.aclose()
        assert "spool writes again" in "".join(err)
        assert sent.is_set()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        pump.join(timeout=10)
        proc.stderr.close()
        sender.close()
        await sender.wait_closed()
    assert sqids == sorted({int(_sqid(f)) for f in frames})


def _sqid(frame: bytes) -> str:
    line = next(ln for ln in frame.split(b"\r\n") if ln.startswith(b"0104"))
    return line[4:].decode()
