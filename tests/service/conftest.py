"""Service test fixtures: a real service on a real SQLite file, with users of every role, and an
empty database on every backend.

The helpers (settings, live servers) are in ``service_helpers.py``, those of databases and frames
in ``live_helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_helpers import database
from service_helpers import Running, make_config, running_service, sim_pipeline

from support.databases import BACKENDS


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Running]:
    """A serving-only service (no pipeline) on SQLite, with role users."""
    async with running_service(make_config(tmp_path), ingest=False) as running:
        yield running


@pytest.fixture
async def ingesting(tmp_path: Path) -> AsyncIterator[Running]:
    """A service ingesting one fast simulated rig."""
    async with running_service(make_config(tmp_path), ingest=True, pipeline=sim_pipeline()) as running:
        yield running


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database on each backend, dropped after the test.

    A module that needs fewer backends narrows them with
    ``pytest.mark.parametrize("db_url", [...], indirect=True)``. An unreachable server skips,
    except under ``CI=true``, where it fails.
    """
    with database(str(request.param), tmp_path) as url:
        yield url


@pytest.fixture
def sim_frames() -> Callable[..., list[Any]]:
    """``sim_frames(source, steps=30, seed=7)``: decoded frames of a simulated rig."""

    def make(source: str, steps: int = 30, seed: int = 7) -> list[Any]:
        from witskit.protocol import DecodedFrame, iter_decode
        from witskit.simulator import DrillingSimulator

        data = b"".join(DrillingSimulator(seed, records=(1, 2)).frames(steps))
        return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]

    return make
