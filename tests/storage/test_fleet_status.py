"""The fleet view's table on every backend: one row per rig, moved forward only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from witskit.storage import Store
from witskit.storage.fleet_status import FleetStatus, RigRow

T0 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


async def test_a_rig_row_moves_forward_only(db_url: str, source_name: str) -> None:
    await (await Store.open(db_url)).aclose()  # the schema, as a worker's store makes it
    status = FleetStatus.open(db_url)
    try:
        late = RigRow(source_name, "site-a", "w1", T0 + timedelta(seconds=10), T0 + timedelta(seconds=10.4))
        await status.record([late, RigRow(f"{source_name}-b", "site-b", "w2", T0, T0 + timedelta(seconds=2))])
        # A redelivered older frame, committed later by another worker: the row stays.
        await status.record([RigRow(source_name, "site-a", "w2", T0, T0 + timedelta(seconds=60))])
        rows = {r.source: r for r in await status.rigs()}
        assert rows[source_name] == late
        assert rows[source_name].lag_seconds == 0.4
        assert rows[f"{source_name}-b"].lag_seconds == 2.0
        newer = RigRow(source_name, "site-a", "w2", T0 + timedelta(seconds=11), T0 + timedelta(seconds=11.1))
        await status.record([newer])
        assert {r.source: r for r in await status.rigs()}[source_name] == newer
    finally:
        await status.aclose()
