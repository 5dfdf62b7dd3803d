"""Source names in ``witskit run`` (the service's pipeline) are those of ``witskit stream``.

``sim://rig-3`` is ``rig-3``, a file is its file name, and ``name:`` or ``name=`` override them;
tests/cli/test_cli_source_names.py checks the same names through ``witskit stream``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service_helpers import make_config, running_service

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
