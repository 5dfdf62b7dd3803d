"""The history's periodic job: compaction, the archive, retention (run by the service's schedule).

One pass, in this order, each step on its own so a failure of one is logged and the others run:

1. :meth:`Store.compact <witskit.storage.store.Store.compact>`: closed hours into hourly blocks
   (PostgreSQL; nothing elsewhere; ``witskit db compact`` runs the same by hand);
2. with an archive: :func:`~witskit.storage.archive.archive_days`, every closed day;
3. with a retention: :func:`~witskit.storage.retention.scheduled_retention`, which removes only
   what the archive verifiably holds when there is one.

:func:`run_maintenance` repeats the pass every ``interval`` seconds until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from witskit.storage.archive import Archive, archive_days, is_archived
from witskit.storage.retention import RetentionPolicy, scheduled_retention

__all__ = ["MaintenancePass", "maintenance_pass", "run_maintenance"]

logger = logging.getLogger("witskit.storage")


@dataclass
class MaintenancePass:
    """What one pass did: points compacted, days archived, points removed, and what failed."""

    compacted: int = 0
    archived_days: int = 0
    removed_points: int = 0
    errors: list[str] = field(default_factory=list)


async def maintenance_pass(
    store: Any, policy: RetentionPolicy | None, archive: Archive | None
) -> MaintenancePass:
    """One pass over ``store`` (a :class:`~witskit.storage.store.Store`)."""
    out = MaintenancePass()
    try:
        out.compacted = await store.compact()
    except Exception as exc:  # each step on its own: the next pass tries again
        out.errors.append(f"compaction: {exc}")
    if archive is not None:
        try:
            out.archived_days = len((await archive_days(store, archive)).written)
        except Exception as exc:
            out.errors.append(f"archive {archive.location}: {exc}")
    if policy is not None and (policy.days is not None or policy.per_source):
        gate = None
        if archive is not None:
            held = archive

            async def gate(source: str, lo: Any, hi: Any) -> bool:
                return await is_archived(store, held, source, lo, hi)

        try:
            out.removed_points = (await scheduled_retention(store, policy, archived=gate)).points
        except Exception as exc:
            out.errors.append(f"retention: {exc}")
    for line in out.errors:
        logger.error("storage: maintenance: %s", line)
    return out


async def run_maintenance(
    store: Any, policy: RetentionPolicy | None, archive: Archive | None, interval: float
) -> None:
    """:func:`maintenance_pass` every ``interval`` seconds (the first at once), until cancelled."""
    while True:
        await maintenance_pass(store, policy, archive)
        await asyncio.sleep(interval)
