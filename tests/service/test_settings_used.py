"""The settings a new user is shown in ``.env.example`` do what they say.

Before: ``WITS_DB_POOL_SIZE=20`` was read and ignored (``witskit run`` opened a pool of 5), and
``WITS_TCP_TIMEOUT``, ``WITS_TCP_RETRY_ATTEMPTS``, ``WITS_API_KEY`` and ``WITS_ENCRYPTION_KEY``
were listed though nothing read them (links reconnect forever whatever the "retry attempts").
"""

from __future__ import annotations

import re
from pathlib import Path

from service_helpers import make_config

from witskit.config import WitsConfig
from witskit.monitoring.metrics import WitsMetrics

ROOT = Path(__file__).resolve().parents[2]


async def test_the_pool_size_setting_sizes_the_services_pools(tmp_path: Path) -> None:
    from witskit.service.runtime import Service

    service = await Service.open(
        make_config(tmp_path, database_pool_size=3), ingest=False, metrics=WitsMetrics()
    )
    try:
        assert service.store._engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        await service.aclose()


def test_every_setting_in_env_example_is_read_by_witskit() -> None:
    names = re.findall(r"^#? ?(WITS_[A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.M)
    assert len(names) > 10
    by_alias = {}
    for field, info in WitsConfig.model_fields.items():
        for alias in getattr(info.validation_alias, "choices", [field]):
            by_alias[str(alias).upper()] = field
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "src" / "witskit").rglob("*.py")
        if p.name != "config.py"
    )
    unused = []
    for name in names:
        assert name in by_alias, f"{name} in .env.example is not a setting"
        field = by_alias[name]
        if not re.search(rf"\b(?:config|settings|cfg)\.{field}\b", sources):
            unused.append(name)
    assert not unused, f"listed in .env.example but read by nothing: {unused}"
