"""Drilling analytics over decoded frames: rig state, KPIs, data quality and alarm rules.

* :mod:`witskit.analytics.rigstate`: :class:`RigStateClassifier` (live, frame by frame) and
  :func:`classify` (a range): what the rig is doing, per record-1 frame.
* :mod:`witskit.analytics.kpi`: :func:`compute_kpis`: drilling and tripping performance over a
  classified range, per day and per well section.
* :mod:`witskit.analytics.quality`: :func:`check_quality`: gaps, null runs, frozen values, spikes,
  out-of-range readings and clock problems.
* :mod:`witskit.analytics.alarms`: :class:`AlarmEngine` over rules from :func:`parse_rules`.

Pure functions and small state machines over :mod:`witskit.protocol`'s frames, no I/O; this package
may import :mod:`witskit.protocol` and :mod:`witskit.units` only. The pipeline runs them live
(``witskit.pipeline.alarms``), the CLI over any stored range. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from witskit._lazy import lazy_exports

if TYPE_CHECKING:
    from witskit.analytics.alarms import AlarmEngine, AlarmEvent, AlarmRule, parse_rules
    from witskit.analytics.kpi import Connection, KpiReport, Kpis, Section, Trip, compute_kpis
    from witskit.analytics.quality import QualityChecker, QualityIssue, QualitySettings, check_quality
    from witskit.analytics.rigstate import (
        RIG_STATE_CODES,
        RigState,
        RigStateClassifier,
        RigStateSettings,
        Sample,
        StateSample,
        classify,
        samples_from_points,
    )

# name -> module, imported on first use (PEP 562). Each analytics module adds its own names here.
_LAZY = {
    "RIG_STATE_CODES": "witskit.analytics.rigstate",
    "RigState": "witskit.analytics.rigstate",
    "RigStateClassifier": "witskit.analytics.rigstate",
    "RigStateSettings": "witskit.analytics.rigstate",
    "Sample": "witskit.analytics.rigstate",
    "StateSample": "witskit.analytics.rigstate",
    "classify": "witskit.analytics.rigstate",
    "samples_from_points": "witskit.analytics.rigstate",
    "Connection": "witskit.analytics.kpi",
    "KpiReport": "witskit.analytics.kpi",
    "Kpis": "witskit.analytics.kpi",
    "Section": "witskit.analytics.kpi",
    "Trip": "witskit.analytics.kpi",
    "compute_kpis": "witskit.analytics.kpi",
    "AlarmEngine": "witskit.analytics.alarms",
    "AlarmEvent": "witskit.analytics.alarms",
    "AlarmRule": "witskit.analytics.alarms",
    "parse_rules": "witskit.analytics.alarms",
    "QualityChecker": "witskit.analytics.quality",
    "QualityIssue": "witskit.analytics.quality",
    "QualitySettings": "witskit.analytics.quality",
    "check_quality": "witskit.analytics.quality",
}

__all__ = [
    "RIG_STATE_CODES",
    "AlarmEngine",
    "AlarmEvent",
    "AlarmRule",
    "Connection",
    "KpiReport",
    "Kpis",
    "QualityChecker",
    "QualityIssue",
    "QualitySettings",
    "RigState",
    "RigStateClassifier",
    "RigStateSettings",
    "Sample",
    "Section",
    "StateSample",
    "Trip",
    "check_quality",
    "classify",
    "compute_kpis",
    "parse_rules",
    "samples_from_points",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
