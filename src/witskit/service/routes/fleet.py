"""``/api/v1/fleet``: every rig of a fleet, its last frame and its receive-to-commit lag.

The rows are what the fleet's central workers recorded after each commit (``fleet_rigs``, see
``docs/fleet.md``): per rig, the edge it came through, when its newest stored frame reached that
edge, when a worker committed it, and the lag between the two. ``age_seconds`` is how long ago that
commit was: a rig whose age grows while others' do not has stopped reaching the centre.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter
from pydantic import BaseModel

from witskit.security.rbac import Permission
from witskit.service.deps import Context, guard

__all__ = ["router"]

router = APIRouter(tags=["fleet"])
READ: Final = guard(Permission.READ_DATA)


class FleetRigOut(BaseModel):
    """One rig of the fleet."""

    source: str
    edge: str
    worker: str
    last_received_at: datetime
    last_committed_at: datetime
    lag_seconds: float
    age_seconds: float


class FleetOut(BaseModel):
    """The fleet: its rigs by name, and the largest lag and age among them."""

    rigs: list[FleetRigOut]
    max_lag_seconds: float | None
    max_age_seconds: float | None


@router.get("/fleet", response_model=FleetOut, summary="The fleet's rigs and their lag", **READ)
async def fleet(context: Context) -> FleetOut:
    """Every rig the fleet's workers have committed, with its last frame time and its lag from
    receive at the edge to commit at the centre (empty when no worker writes this database)."""
    rows = await context.fleet.rigs() if context.fleet is not None else []
    now = datetime.now(UTC)
    rigs = [
        FleetRigOut(
            source=r.source,
            edge=r.edge,
            worker=r.worker,
            last_received_at=r.last_received_at,
            last_committed_at=r.last_committed_at,
            lag_seconds=r.lag_seconds,
            age_seconds=max((now - r.last_committed_at).total_seconds(), 0.0),
        )
        for r in rows
    ]
    return FleetOut(
        rigs=rigs,
        max_lag_seconds=max((r.lag_seconds for r in rigs), default=None),
        max_age_seconds=max((r.age_seconds for r in rigs), default=None),
    )
