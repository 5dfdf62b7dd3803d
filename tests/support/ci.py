"""Whether this is a CI run."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """True under ``CI=true``: a missing server, driver or browser is a failure there, not a skip."""
    return os.environ.get("CI", "").strip().lower() == "true"
