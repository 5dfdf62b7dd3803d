"""Dashboard test fixtures: the real service in a subprocess, and Debian's Chromium.

The browser is ``/usr/bin/chromium`` (``WITSKIT_CHROMIUM`` to override), driven by Playwright's sync
API in plain (non-async) tests; no browser is ever downloaded. Without Chromium or Playwright the
browser tests are skipped, except under ``CI=true``, where they fail. The helpers are in
``dashboard_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    RunningService,
    browser_missing,
    start_service,
    stop_service,
)

from support.ci import in_ci


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """``witskit run --port 0`` with its default simulated rig, in a subprocess, for the module."""
    running = start_service(tmp_path_factory.mktemp("witskit-data"))
    try:
        yield running
    finally:
        stop_service(running.process)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright (sync API), or a skip (a failure under CI=true) when the browser is missing."""
    missing = browser_missing()
    if missing:
        if in_ci():
            pytest.fail(f"CI=true and the dashboard cannot be tested in a browser: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    """One Chromium process for the module (launching it is the slow part); tests never share a context."""
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    """A fresh browser context (its own cookies, storage and cache: a new profile, as a user's
    first visit); the test fails if any page logged an error."""
    context = chromium.new_context(color_scheme="dark", locale="en-US", timezone_id="UTC")
    state = Browser(context)
    try:
        yield state
    finally:
        context.close()
    unexpected = [p for p in state.problems if not any(e.search(p) for e in state.expected)]
    assert unexpected == [], "the dashboard logged problems:\n" + "\n".join(unexpected)
