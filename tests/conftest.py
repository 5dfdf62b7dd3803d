"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Hypothesis: deterministic in CI, a little more exploration on a developer's machine.
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def simple_frame() -> bytes:
    return b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n"
