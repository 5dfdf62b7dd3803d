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
