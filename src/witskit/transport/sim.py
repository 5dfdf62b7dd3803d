"""Compatibility path: the in-process simulated source now lives in :mod:`witskit.sim.source`.

Kept so that ``from witskit.transport.sim import SimulatorSource`` keeps working; these are the same
objects as in :mod:`witskit.sim.source`. The simulator is not a transport: new code imports from
:mod:`witskit.sim`. This shim and ``transport/rigserver.py`` are the only modules of
``witskit.transport`` that import a package above it.
"""

from witskit.sim.source import URL_OPTIONS, SimulatorSource

__all__ = ["URL_OPTIONS", "SimulatorSource"]
