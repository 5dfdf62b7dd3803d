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


def _check_example_output(code: str, printed: list[str], where: str) -> None:
    """A documented example printed exactly what its ``#> text`` lines show, in order.

    ``#>`` follows a ``print(...)`` on its line or stands on a line of its own; ``...`` in a shown
    line stands for any text (an address, a time). A block that prints without showing it fails,
    so an example's output cannot drift from its text.
    """
    import re

    shown = [m.strip() for m in re.findall(r"#> (.*)$", code, flags=re.M)]
    got = [line.rstrip() for line in printed if line.strip()]
    assert len(got) == len(shown), f"{where}: prints {len(got)} line(s), shows {len(shown)}:\n{got}\n{shown}"
    for want, line in zip(shown, got, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.split("..."))
        assert re.fullmatch(pattern, line.strip()), f"{where}: shows {want!r}, printed {line!r}"


@pytest.fixture
def example_output():  # type: ignore[no-untyped-def]
    """The checker of documented examples' output (see :func:`_check_example_output`)."""
    return _check_example_output
