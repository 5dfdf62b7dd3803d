"""Compatibility path: the simulated rig recorder (EDR) server now lives in :mod:`witskit.sim.server`.

Kept so that ``from witskit.transport.rigserver import Faults, RigServer`` keeps working; these are
the same objects as in :mod:`witskit.sim.server`. The rig server is a simulator, not a transport:
new code imports from :mod:`witskit.sim`. This shim and ``transport/sim.py`` are the only modules
of ``witskit.transport`` that import a package above it.
"""

from witskit.sim.server import (
    DEFAULT_PASON_SILENCE_TIMEOUT,
    DEFAULT_STALL_EVERY,
    FULL_WITS_PACKETS,
    PASON_HEADER,
    Faults,
    RigServer,
)

__all__ = [
    "DEFAULT_PASON_SILENCE_TIMEOUT",
    "DEFAULT_STALL_EVERY",
    "FULL_WITS_PACKETS",
    "PASON_HEADER",
    "Faults",
    "RigServer",
]
