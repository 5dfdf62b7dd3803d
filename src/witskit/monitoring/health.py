"""Health checks: the plan's ``HealthMonitor``, used for ``/livez`` and ``/readyz``.

``/livez`` answers from the process alone (no dependency checks: a slow database must not get a
healthy process restarted). ``/readyz`` runs the registered checks: database reachable, spool below
its limit, sources connected.

The plan's process-wide ``health_monitor`` is a :class:`HealthMonitor` with the memory check; the
plan's ``database_health_check`` takes what reaches the database (``Store.ping``), since this
layer imports no storage and there is no process-wide engine: register it as
``health_monitor.register_check("database", functools.partial(database_health_check, store.ping))``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

__all__ = [
    "HealthCheck",
    "HealthMonitor",
    "HealthStatus",
    "database_health_check",
    "health_monitor",
    "memory_health_check",
]


class HealthStatus(Enum):
    """How a component is doing."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass
class HealthCheck:
    """The result of one check.

    ``message`` may name what only an operator should see (a driver error can carry the database's
    user and host, a path, a rig's name); ``reason`` is a short public summary of why a check is not
    healthy, with none of that, fit for an unauthenticated ``/readyz``.
    """

    name: str
    status: HealthStatus
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "timestamp": self.timestamp.isoformat(),
        }


CheckFunc = Callable[[], Awaitable[HealthCheck | bool] | HealthCheck | bool]


class HealthMonitor:
    """Runs named checks; a check may be sync or async and return a HealthCheck or a bool."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.checks: dict[str, CheckFunc] = {}
        self.timeout = timeout

    def register_check(self, name: str, check_func: CheckFunc) -> None:
        """Add (or replace) a check."""
        self.checks[name] = check_func

    async def _run(self, name: str, func: CheckFunc) -> HealthCheck:
        try:
            result = func()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.timeout)
        except TimeoutError:
            return HealthCheck(
                name,
                HealthStatus.UNHEALTHY,
                f"Check timed out after {self.timeout:.0f} s",
                reason="the check timed out",
            )
        except Exception as exc:
            return HealthCheck(
                name, HealthStatus.UNHEALTHY, f"Check failed: {exc}", reason="the check failed"
            )
        if isinstance(result, HealthCheck):
            return result
        return HealthCheck(name, HealthStatus.HEALTHY if result else HealthStatus.UNHEALTHY)

    async def run_all_checks(self) -> list[HealthCheck]:
        """Every check, concurrently, each bounded by the timeout."""
        return list(await asyncio.gather(*(self._run(n, f) for n, f in self.checks.items())))

    async def get_overall_health(self) -> HealthCheck:
        """Healthy when all are; unhealthy when any is; degraded otherwise."""
        checks = await self.run_all_checks()
        if all(c.status is HealthStatus.HEALTHY for c in checks):
            status = HealthStatus.HEALTHY
        elif any(c.status is HealthStatus.UNHEALTHY for c in checks):
            status = HealthStatus.UNHEALTHY
        else:
            status = HealthStatus.DEGRADED
        return HealthCheck(
            "overall",
            status,
            details={
                "individual_checks": {c.name: c.status.value for c in checks},
                "checks": [c.to_dict() for c in checks],
            },
        )


def memory_health_check(degraded_percent: float = 75.0, unhealthy_percent: float = 90.0) -> HealthCheck:
    """Machine memory in use, from /proc/meminfo (Linux); healthy with a note elsewhere."""
    try:
        info: dict[str, int] = {}
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, value = line.split(":", 1)
                info[key] = int(value.split()[0])
        percent = 100.0 * (1 - info["MemAvailable"] / info["MemTotal"])
    except (OSError, KeyError, ValueError):
        return HealthCheck("memory", HealthStatus.HEALTHY, "memory use unknown on this platform")
    if percent > unhealthy_percent:
        status, word = HealthStatus.UNHEALTHY, "critical"
    elif percent > degraded_percent:
        status, word = HealthStatus.DEGRADED, "high"
    else:
        status, word = HealthStatus.HEALTHY, "normal"
    return HealthCheck(
        "memory", status, f"Memory usage {word}: {percent:.1f}%", {"memory_percent": round(percent, 1)}
    )


async def database_health_check(ping: Callable[[], Awaitable[object]]) -> HealthCheck:
    """Healthy when ``await ping()`` returns (``Store.ping`` runs ``SELECT 1``); unhealthy with the
    driver's error otherwise (in ``message`` only: it may name the database's user and host)."""
    try:
        await ping()
    except Exception as exc:
        return HealthCheck(
            "database", HealthStatus.UNHEALTHY, f"database unreachable: {exc}", reason="not reachable"
        )
    return HealthCheck("database", HealthStatus.HEALTHY, "reachable")


#: A process-wide monitor with the memory check (the plan's ``health_monitor``).
health_monitor = HealthMonitor()
health_monitor.register_check("memory", memory_health_check)
