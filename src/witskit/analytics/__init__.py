"""Drilling analytics over decoded frames: data quality and alarm rules (rig state and KPIs beside them).

Pure functions and small state machines over :class:`~witskit.protocol.DecodedFrame`; no I/O. The
pipeline runs them live (``witskit.pipeline.alarms``), the CLI over any stored range. Names load on
first use, so ``import witskit.analytics`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from witskit._lazy import lazy_exports

if TYPE_CHECKING:
    from witskit.analytics.alarms import AlarmEngine, AlarmEvent, AlarmRule, parse_rules
    from witskit.analytics.quality import QualityChecker, QualityIssue, QualitySettings, check_quality

__all__ = [
    "AlarmEngine",
    "AlarmEvent",
    "AlarmRule",
    "QualityChecker",
    "QualityIssue",
    "QualitySettings",
    "check_quality",
    "parse_rules",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AlarmEngine": "witskit.analytics.alarms",
        "AlarmEvent": "witskit.analytics.alarms",
        "AlarmRule": "witskit.analytics.alarms",
        "parse_rules": "witskit.analytics.alarms",
        "QualityChecker": "witskit.analytics.quality",
        "QualityIssue": "witskit.analytics.quality",
        "QualitySettings": "witskit.analytics.quality",
        "check_quality": "witskit.analytics.quality",
    },
)
