"""The drilling simulator: the model, an in-process source and a rig server, for testing without a rig.

* :mod:`witskit.sim.model`: :class:`DrillingSimulator`, a deterministic rig that writes WITS
  Level 0 frames (pure Python, no I/O, no wall clock).
* :mod:`witskit.sim.source`: :class:`SimulatorSource`, the model paced in real time as a source
  (``sim://rig-1`` in :func:`~witskit.transport.open_source`).
* :mod:`witskit.sim.server`: :class:`RigServer`, the model served the way rig recorders serve it
  (TCP, TLS, push, serial; Pason emulation; injected :class:`Faults`).

This package may import :mod:`witskit.protocol` and :mod:`witskit.transport`; nothing below it
imports it. ``open_source`` opens ``sim://`` URLs because ``witskit/__init__.py`` names
``witskit.sim.source`` in the table of schemes served above transport (:mod:`witskit._schemes`);
the module is imported when the first such URL is opened. The names are imported on first use, so
``import witskit.sim`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from witskit._lazy import lazy_exports

if TYPE_CHECKING:
    from witskit.sim.model import ACTIVITY_CODES, DEFAULT_START, RECORDS, DrillingSimulator, Phase, SimState
    from witskit.sim.server import Faults, RigServer
    from witskit.sim.source import SimulatorSource

__all__ = [
    "ACTIVITY_CODES",
    "DEFAULT_START",
    "RECORDS",
    "DrillingSimulator",
    "Faults",
    "Phase",
    "RigServer",
    "SimState",
    "SimulatorSource",
]

# name -> module, for names imported on first use (PEP 562).
_LAZY = {
    "ACTIVITY_CODES": "witskit.sim.model",
    "DEFAULT_START": "witskit.sim.model",
    "RECORDS": "witskit.sim.model",
    "DrillingSimulator": "witskit.sim.model",
    "Phase": "witskit.sim.model",
    "SimState": "witskit.sim.model",
    "Faults": "witskit.sim.server",
    "RigServer": "witskit.sim.server",
    "SimulatorSource": "witskit.sim.source",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
