"""Drilling analytics over decoded frames: rig state and KPIs (data quality and alarms to come).

* :mod:`witskit.analytics.rigstate`: :class:`RigStateClassifier` (live, frame by frame) and
  :func:`classify` (a range): what the rig is doing, per record-1 frame.
* :mod:`witskit.analytics.kpi`: :func:`compute_kpis`: drilling and tripping performance over a
  classified range, per day and per well section.

Pure functions and small stateful objects over :mod:`witskit.protocol`'s frames; this package may
import :mod:`witskit.protocol` and :mod:`witskit.units` only. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from witskit._lazy import lazy_exports

if TYPE_CHECKING:
    from witskit.analytics.kpi import Connection, KpiReport, Kpis, Section, Trip, compute_kpis
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

__all__ = [
    "RIG_STATE_CODES",
    "Connection",
    "KpiReport",
    "Kpis",
    "RigState",
    "RigStateClassifier",
    "RigStateSettings",
    "Sample",
    "Section",
    "StateSample",
    "Trip",
    "classify",
    "compute_kpis",
    "samples_from_points",
]

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
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
