"""The rig state and KPIs on the dashboard, in a real Chromium against a real ``witskit run``: the
state strip beside the tracks, each rig's current state in the rig picker, the KPI panel and the
quality issues of the range on screen.

``rig-hist`` has three hours of stored history at 1 Hz, written before the service started (so its
states are classified from the stored points); ``rig-1`` is the simulated rig the service ingests
live (its states are classified as frames arrive and stored).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Browser, RunningService, backfill, start_service, stop_service
from test_dashboard_browser import pick_rig, sign_in

from support.waiting import wait_until

STATE_LABELS = {
    "Rotary drilling",
    "Slide drilling",
    "Reaming",
    "Back reaming",
    "Circulating",
    "Tripping in",
    "Tripping out",
    "In slips",
    "Stationary",
    "Unknown",
}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    data_dir = tmp_path_factory.mktemp("witskit-states")
    now = datetime.now(UTC).replace(microsecond=0)
    backfill(data_dir, "rig-hist", now - timedelta(hours=3, minutes=10), now - timedelta(minutes=10), 1)
    running = start_service(data_dir)
    try:
        yield running
    finally:
        stop_service(running.process)


def dataset(page: Any, selector: str) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(f"() => ({{...document.querySelector('{selector}').dataset}})")
    return found


def strip_states(page: Any) -> list[str]:
    states: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('#state-strip .state-seg')].map((s) => s.dataset.state)"
    )
    return states


def test_the_strip_kpis_and_issues_follow_the_rig_and_range_on_screen(
    browser: Browser, history: RunningService, tmp_path: Path
) -> None:
    page = browser.page(1440, 900)
    sign_in(page, history.url, history.admin, history.password)
    pick_rig(page, "rig-hist")
    page.click('button[data-span="21600"]')  # 6 h: the three stored hours and the time since

    # The strip: several states down the tracks, each segment in its state's colour, inside the plot.
    wait_until(lambda: len(set(strip_states(page))) >= 3, timeout=30)
    states = set(strip_states(page))
    assert {"rotary_drilling", "in_slips"} <= states, states
    box = page.locator("#state-strip").bounding_box()
    track = page.locator(".track").first.bounding_box()
    assert box["x"] + box["width"] <= track["x"] + 1  # beside the tracks, to their left
    assert box["height"] > 300
    colours = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#state-strip .state-seg')]"
        ".map((s) => [s.dataset.state, getComputedStyle(s).backgroundColor]))"
    )
    assert len(set(colours.values())) == len(colours)  # one colour per state
    segs = page.evaluate(
        "() => [...document.querySelectorAll('#state-strip .state-seg')]"
        ".map((s) => [s.offsetTop, s.offsetHeight])"
    )
    assert all(top >= 0 for top, _ in segs)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(segs))  # in time order, downward

    # The KPI panel: hours by state, the connection-time histogram with the connections counted.
    wait_until(lambda: page.locator("#kpi-panel .kpi-breakdown li").count() >= 3, timeout=30)
    breakdown = page.inner_text("#kpi-panel .kpi-breakdown")
    assert "Rotary drilling" in breakdown
    assert "%" in breakdown
    connections = int(page.inner_text('#kpi-panel [data-kpi="connections"]'))
    assert connections >= 1
    bins = page.evaluate(
        "() => [...document.querySelectorAll('#kpi-panel .kpi-bin')].map((b) => Number(b.dataset.count))"
    )
    assert sum(bins) == connections
    assert int(page.get_attribute("#kpi-panel", "data-frames") or 0) > 3 * 3000

    # The quality panel: the issues of the range, under today's per-minute counts.
    wait_until(lambda: "Range:" in page.inner_text("#quality-issues"), timeout=30)
    assert page.inner_text("#q-gaps") != ""
    page.screenshot(path=str(tmp_path / "states.png"))  # for a look when it fails

    # Every request of the panels was a 200 (the browser fixture fails on any failed request).
    asked = [u for u in browser.requests if "/api/v1/data/" in u and "source=rig-hist" in u]
    assert any("/data/rig-state" in u for u in asked)
    assert any("/data/kpi" in u for u in asked)
    assert any("/data/quality" in u for u in asked)


def test_the_rig_picker_shows_what_each_rig_is_doing(browser: Browser, history: RunningService) -> None:
    page = browser.page(1280, 800)
    sign_in(page, history.url, history.admin, history.password)
    pick_rig(page, "rig-1")

    # The live rig: classified as its frames arrive; the picker shows its state and since when.
    def live_state() -> str:
        text: str = page.inner_text('li[data-rig="rig-1"] .rig-activity-text')
        return text

    wait_until(lambda: live_state().split(" · ")[0] in STATE_LABELS - {"Unknown"}, timeout=45)
    assert " · " in live_state()
    activity = dataset(page, 'li[data-rig="rig-1"] .rig-activity')
    assert activity["state"] not in ("", "unknown")
    label = page.get_attribute('li[data-rig="rig-1"] button', "aria-label") or ""
    assert live_state().split(" · ")[0] in label
    # The live rig's strip fills in as it is stored (or classified from its points meanwhile).
    wait_until(lambda: int(dataset(page, "#state-strip")["segments"]) >= 1, timeout=30)
    assert dataset(page, "#state-strip")["source"] == "rig-1"
