"""Source names in ``witskit run`` (the service's pipeline) are those of ``witskit stream``.

``sim://rig-3`` is ``rig-3``, a file is its file name, and ``name:`` or ``name=`` override them;
tests/cli/test_cli_source_names.py checks the same names through ``witskit stream``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from service_helpers import make_config, running_service, sim_pipeline

from witskit.config import PipelineConfig, SourceConfig
from witskit.simulator import DrillingSimulator


async def test_run_names_sources_as_stream_does(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "log.wits"
    log.parent.mkdir()
    log.write_bytes(b"".join(DrillingSimulator(5, records=(1,)).frames(3)))
    pipeline = PipelineConfig(
        sources=[
            SourceConfig(url="sim://rig-3?rate=50&records=1"),
            SourceConfig(url=f"file://{log}"),
            SourceConfig(url=f"file://{log}?name=rig-8"),
            SourceConfig(url="sim://rig-4?rate=50&records=1", name="rig-9"),
        ]
    )
    async with running_service(make_config(tmp_path), ingest=True, pipeline=pipeline, users=False) as running:
        service = running.service
        assert service.connections is not None
        assert sorted(c.name for c in service.connections) == ["log.wits", "rig-3", "rig-8", "rig-9"]
        wanted = {"log.wits", "rig-3", "rig-8", "rig-9"}
        async with asyncio.timeout(20):
            while {s.name for s in await service.store.sources()} != wanted:
                await asyncio.sleep(0.05)


async def test_a_key_password_in_a_connection_url_is_never_shown_logged_or_audited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import trustme
    from cryptography.hazmat.primitives import serialization

    secret = "Sup3r-secret-pw"
    issued = trustme.CA().issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret.encode()),
        )
    )
    url = f"tls-listen://127.0.0.1:0?cert={tmp_path / 'server.pem'}&key={tmp_path / 'server.key'}"
    caplog.set_level(logging.INFO)  # (DEBUG driver logs of SQL parameters: the security part)
    async with running_service(make_config(tmp_path), ingest=True, pipeline=sim_pipeline()) as running:
        auth = running.auth("admin")
        added = await running.client.post(
            "/api/v1/connections", json={"url": f"{url}&key_password={secret}", "name": "rigs"}, headers=auth
        )
        assert added.status_code == 201, added.text
        assert added.json()["url"].endswith("&key_password=***")
        wrong = await running.client.post(
            "/api/v1/connections", json={"url": f"{url}&key_password=not-{secret}", "name": "x"}, headers=auth
        )
        assert wrong.status_code == 422
        assert "wrong password" in wrong.json()["detail"]
        listed = await running.client.get("/api/v1/connections", headers=auth)
        await running.service.audit.flush()
        audit = await running.service.accounts.list_audit(actor="admin")
    for shown in (added.text, wrong.text, listed.text, caplog.text, repr(audit)):
        assert secret not in shown


async def test_a_port_0_listener_keeps_the_name_it_was_registered_under(tmp_path: Path) -> None:
    # The connection (and the frames) are named when the source is made, before it binds: a
    # listener that renamed itself to its real port once bound could no longer be stopped by name.
    pipeline = PipelineConfig(sources=[SourceConfig(url="tcp-listen://127.0.0.1:0")])
    async with running_service(make_config(tmp_path), ingest=True, pipeline=pipeline) as running:
        service = running.service
        (conn,) = list(service.connections)
        listener = conn.source
        async with asyncio.timeout(10):
            while listener._server is None:
                await asyncio.sleep(0.01)
        assert conn.name == listener.name == "tcp-listen://127.0.0.1:0"
        port = listener.port
        _, rig = await asyncio.open_connection("127.0.0.1", port)
        rig.write(b"&&\r\n0101RIG-7\r\n01083650.40\r\n!!\r\n")
        await rig.drain()
        async with asyncio.timeout(10):
            while "tcp-listen://127.0.0.1:0/127.0.0.1" not in {s.name for s in await service.store.sources()}:
                await asyncio.sleep(0.05)
        rig.close()
        await rig.wait_closed()
        stopped = await running.client.post(
            f"/api/v1/connections/{conn.name}/stop", headers=running.auth("admin")
        )
        assert stopped.status_code == 200, stopped.text
        assert listener.closed
