"""CLI test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``WITS_DATA_DIR`` set to a fresh ``data`` folder in ``tmp_path`` (a module uses it for every
    test with ``pytestmark = pytest.mark.usefixtures("data_dir")``)."""
    monkeypatch.setenv("WITS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
