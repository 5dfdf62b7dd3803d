"""The cyclic garbage collector's settings for a WitsKit process (``witskit`` commands).

A worker, an edge or an import holds a batch of thousands of frames alive while it handles it,
and CPython's default (a young collection every 700 container allocations) made the collector
walk those batches again and again: 15% of a central worker's CPU (~1.0 of 7.0 s draining 30,000
frames in ``bench/bench_worker.py``, ~0.08 s after), 4% of an edge's (0.27 of 6.2 s in
``bench/bench_edge.py``, 0.07 after). Reference counting frees almost everything WitsKit makes as
soon as it is done with it; the collector is only for cycles, which are rare, so collecting less
often costs a little memory at most. And what was loaded at start-up (modules, classes, the WITS
dictionary) is frozen out of every collection (``gc.freeze``).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["THRESHOLDS", "tune"]

#: Container allocations between young collections, young collections between middle ones, middle
#: ones between full ones (CPython's default: 700, 10, 10).
THRESHOLDS: Final = (50_000, 20, 100)


def tune() -> None:
    """Freeze what is loaded now and collect at :data:`THRESHOLDS` (a command's start-up)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
