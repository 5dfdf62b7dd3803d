"""The alarm banner in a real Chromium against a real ``witskit run`` whose pipeline file has a rule.

A rig pushes frames over TCP: high standpipe pressure fires the rule, the banner shows it in the
critical colour with the hydraulics track marked; an operator acknowledges it from the banner; a
viewer sees the banner without the button; the sound is off until turned on; the clearing hides
the banner and unmarks the track.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    Browser,
    RunningService,
    frame_bytes,
    free_port,
    pick_rig,
    sign_in,
    start_service,
    stop_service,
)

from support.waiting import wait_until

PASSWORD = "p" * 16


@pytest.fixture(scope="module")
def alarmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, int]]:
    data_dir = tmp_path_factory.mktemp("witskit-alarms")
    port = free_port()
    config = data_dir / "pipeline.yaml"
    config.write_text(
        f"sources:\n  - url: tcp-listen://127.0.0.1:{port}\n"
        '    options: {peer_names: {"127.0.0.1": rig-live}}\n'
        "alarms:\n  rules:\n"
        '    - {name: spp-high, type: threshold, code: "0121", above: 3000, clear_seconds: 2,'
        " severity: critical}\n"
    )
    running = start_service(data_dir, config=config)
    try:
        for name, role in (("op", "operator"), ("watcher", "viewer")):
            made = running.api(
                "POST", "/users", json={"username": name, "password": PASSWORD, "roles": [role]}
            )
            assert made.status_code == 201, made.text
        yield running, port
    finally:
        stop_service(running.process)


def banner_lines(page: Any) -> list[str]:
    lines: list[str] = page.locator("#alarm-banner .alarm-text").all_inner_texts()
    return lines


def test_an_alarm_shows_in_the_banner_marks_its_track_and_is_acknowledged(
    browser: Browser, alarmed: tuple[RunningService, int], tmp_path: Path
) -> None:
    running, port = alarmed
    start = datetime.now(UTC).replace(microsecond=0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as rig:

        def push(second: int, spp: float) -> None:
            rig.sendall(
                frame_bytes(start + timedelta(seconds=second), {"0108": "2000.5", "0121": f"{spp:g}"})
            )

        push(0, 2500)
        page = browser.page(1280, 720)
        sign_in(page, running.url, "op", PASSWORD)
        pick_rig(page, "rig-live")
        assert page.locator("#alarm-banner").is_hidden()
        # Live: the firing arrives over the WebSocket of the rig on screen.
        for second in range(1, 4):
            push(second, 3400)
        page.wait_for_selector("#alarm-banner:not([hidden])")
        wait_until(lambda: banner_lines(page) == ["CRITICAL spp-high fired on rig-live: 0121 = 3400 PSI"])
        assert page.get_attribute("#alarm-banner", "data-level") == "critical"
        assert page.get_attribute('[data-track="hydraulics"]', "data-alarm") == "critical"
        assert page.get_attribute('[data-track="loads"]', "data-alarm") is None
        colour = page.eval_on_selector("#alarm-banner", "el => getComputedStyle(el).borderBottomColor")
        bad = page.evaluate(
            "() => { const d = document.createElement('div'); d.style.color = 'var(--bad)';"
            " document.body.append(d); const c = getComputedStyle(d).color; d.remove(); return c; }"
        )
        assert colour == bad
        # The sound is off by default, and a click turns it on (remembered in this browser).
        sound = page.locator("#alarm-sound")
        assert (sound.inner_text(), sound.get_attribute("aria-pressed")) == ("Sound off", "false")
        sound.click()
        wait_until(lambda: page.get_attribute("#alarm-sound", "aria-pressed") == "true")
        assert page.evaluate("() => localStorage.getItem('witskit.alarmSound')") == "on"

        # A viewer sees the alarm (from GET /api/v1/alarms) but no button to acknowledge it.
        viewer = browser.page(1280, 720)
        sign_in(viewer, running.url, "watcher", PASSWORD)
        viewer.wait_for_selector("#alarm-banner:not([hidden])")
        wait_until(lambda: len(banner_lines(viewer)) == 1)
        assert viewer.locator(".alarm-ack-button").count() == 0

        # The operator acknowledges it from the banner: the line says who, the API agrees.
        page.click(".alarm-ack-button")
        page.wait_for_selector(".alarm-ack:has-text('acknowledged by op')")
        assert page.locator(".alarm-ack-button").count() == 0
        [active] = running.api("GET", "/alarms").json()
        assert active["acknowledged_by"] == "op"
        # ... and the viewer's banner shows it at its next load.
        viewer.wait_for_selector(".alarm-ack:has-text('acknowledged by op')", timeout=15000)
        page.screenshot(path=str(tmp_path / "alarm-banner.png"))  # for a look when it fails

        # Back to normal: the clearing hides the banner and unmarks the track.
        for second in range(4, 9):
            push(second, 2500)
        page.wait_for_selector("#alarm-banner", state="hidden")
        assert page.get_attribute('[data-track="hydraulics"]', "data-alarm") is None
