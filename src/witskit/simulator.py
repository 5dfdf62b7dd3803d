"""Compatibility path: the drilling simulator's model now lives in :mod:`witskit.sim.model`.

Kept so that ``from witskit.simulator import DrillingSimulator`` (the seed's examples, existing
code) keeps working; these are the same objects as in :mod:`witskit.sim.model`. New code imports
from :mod:`witskit.sim` (or :mod:`witskit.sim.model`).
"""

from witskit.sim.model import ACTIVITY_CODES, DEFAULT_START, RECORDS, DrillingSimulator, Phase, SimState

__all__ = ["ACTIVITY_CODES", "DEFAULT_START", "RECORDS", "DrillingSimulator", "Phase", "SimState"]
