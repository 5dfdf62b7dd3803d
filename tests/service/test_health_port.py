"""``WITS_HEALTH_CHECK_PORT``: ``/livez`` and ``/readyz``, alone, on a port of their own.

Real sockets: ``serve()`` through uvicorn on 127.0.0.1, the API on port 0 and the health port on a
free port found just before.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_helpers import free_port
from service_helpers import make_config, serving, sim_pipeline

from support.commands import run_witskit
from witskit.config import ConfigError, WitsConfig, load_config
from witskit.errors import UsageError
from witskit.service.accounts import AccountStore
from witskit.service.probe import probe_url


async def test_the_health_port_serves_livez_and_readyz_only(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, health_check_port=port, metrics_enabled=False)
    async with serving(config, pipeline=sim_pipeline()) as bound, httpx.AsyncClient(timeout=10) as http:
        assert bound.health_url == f"http://127.0.0.1:{port}/livez"
        health = f"http://127.0.0.1:{port}"
        live = await http.get(f"{health}/livez")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        assert (await http.get(f"{bound.url}/livez")).json() == live.json()

        async def both_ready() -> tuple[Any, Any]:
            mine = await http.get(f"{health}/readyz")
            api = await http.get(f"{bound.url}/readyz")
            return (mine.status_code, mine.json()), (api.status_code, api.json())

        mine, api = await both_ready()
        while mine != api:  # a check's message may change between the two requests (spool fill)
            mine, api = await both_ready()
        assert mine[0] == 200
        assert [c["name"] for c in mine[1]["checks"]] == ["database", "spool", "sources"]
        # Nothing else: no API, no metrics, no documentation.
        for path in ("/", "/metrics", "/api/v1/sources", "/docs", "/openapi.json"):
            assert (await http.get(f"{health}{path}")).status_code == 404, path
    with pytest.raises(httpx.ConnectError):  # closed with the service
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2)


async def test_witskit_serve_has_it_too(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, health_check_port=port, metrics_enabled=False)
    async with serving(config, ingest=False) as bound, httpx.AsyncClient(timeout=10) as http:
        assert bound.health_url is not None
        ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.json() == {
            "status": "healthy",
            "checks": [{"name": "database", "status": "healthy"}],  # no message: public
        }


async def test_a_port_that_cannot_be_bound_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(tmp_path, health_check_port=port, metrics_enabled=False)
        with pytest.raises(UsageError) as refused:
            async with serving(config, pipeline=sim_pipeline()):
                pass
    assert str(refused.value) == (
        f"WITS_HEALTH_CHECK_PORT={port}: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    # Stopped before anything was created: no administrator whose password nobody was shown.
    accounts = await AccountStore.open(config.database_url_value)
    try:
        assert await accounts.count_users() == 0
    finally:
        await accounts.aclose()


@pytest.mark.parametrize("same_as", ["off", "metrics"])
async def test_no_separate_port_when_off_or_already_served(tmp_path: Path, same_as: str) -> None:
    metrics_port = free_port()
    config = make_config(
        tmp_path, metrics_port=metrics_port, health_check_port=0 if same_as == "off" else metrics_port
    )
    async with serving(config, ingest=False) as bound, httpx.AsyncClient(timeout=10) as http:
        assert bound.health_url is None
        assert bound.metrics_url == f"http://127.0.0.1:{metrics_port}/metrics"
        # The metrics port answers the probes already.
        assert (await http.get(f"http://127.0.0.1:{metrics_port}/livez")).status_code == 200


def test_the_setting_is_off_by_default_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WITS_HEALTH_CHECK_PORT", raising=False)
    assert WitsConfig(_env_file=None).health_check_port == 0  # type: ignore[call-arg]
    monkeypatch.setenv("WITS_HEALTH_CHECK_PORT", "8081")
    assert load_config(_env_file=None).health_check_port == 8081
    monkeypatch.setenv("WITS_HEALTH_CHECK_PORT", "70000")
    with pytest.raises(ConfigError, match="WITS_HEALTH_CHECK_PORT"):
        load_config(_env_file=None)


def test_the_container_probe_asks_the_health_port_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITS_HOST", "0.0.0.0")
    monkeypatch.setenv("WITS_PORT", "8080")
    monkeypatch.delenv("WITS_HEALTH_CHECK_PORT", raising=False)
    assert probe_url() == "http://127.0.0.1:8080/livez"
    monkeypatch.setenv("WITS_HEALTH_CHECK_PORT", "0")
    assert probe_url() == "http://127.0.0.1:8080/livez"
    monkeypatch.setenv("WITS_HEALTH_CHECK_PORT", "8081")
    assert probe_url() == "http://127.0.0.1:8081/livez"


def test_the_command_line_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(tmp_path),
            "WITS_DATA_DIR": str(tmp_path / "data"),
            "WITS_METRICS_ENABLED": "false",
            "WITS_HEALTH_CHECK_PORT": str(port),
        }
        proc = run_witskit("serve", "--port", "0", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"WITS_HEALTH_CHECK_PORT={port}: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
