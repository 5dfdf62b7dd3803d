"""The dashboard in a real Chromium against a real ``witskit run`` with its simulated rig.

Each test opens a fresh browser profile; any console error or warning, page error or failed request
fails it (see ``conftest.py``). Plain synchronous tests: Playwright's sync API must not run inside an
event loop.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Browser, RunningService, start_service, stop_service, wait_until

TILE_CODES = ["DBTM", "DMEA", "ROPA", "HKLA", "WOBA", "RPMA", "TQA", "SPPA", "MFIA", "TVA"]
M_PER_FT = 0.3048


def tile_value(page: Any, name: str) -> str:
    text: str = page.inner_text(f'[data-tile="{name}"] .tile-value')
    return text


def tile_unit(page: Any, name: str) -> str:
    text: str = page.inner_text(f'[data-tile="{name}"] .tile-unit')
    return text


def number(text: str) -> float:
    return float(text.replace(",", ""))


def all_tiles(page: Any) -> list[str]:
    return [tile_value(page, n) for n in TILE_CODES]


def points(page: Any) -> int:
    return int(page.get_attribute("#tracks", "data-points") or 0)


def sign_in(page: Any, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.wait_for_selector("#login-view:not([hidden])")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#app:not([hidden])")


def pick_rig(page: Any, name: str = "rig-1") -> None:
    button = page.locator(".rig", has_text=name)
    button.wait_for()
    button.click()
    page.wait_for_selector(f'.rig[aria-pressed="true"]:has-text("{name}")')
    assert page.inner_text("#rig-title") == name


def no_horizontal_scroll(page: Any) -> bool:
    result: bool = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    return result


def test_admin_signs_in_watches_the_rig_switches_units_and_logs_out(
    browser: Browser, service: RunningService, tmp_path: Path
) -> None:
    page = browser.page(1280, 720)
    sign_in(page, service.url, service.admin, service.password)
    assert page.is_visible("#nav-admin"), "a super_admin sees the user administration link"

    pick_rig(page)
    # The rig picker says the rig is connected and how old its last frame is.
    rig = page.locator(".rig", has_text="rig-1")
    assert rig.get_attribute("data-state") == "ok"
    assert re.search(r"\d+ s ago", rig.inner_text())

    # Tiles fill, then change as frames arrive over the WebSocket.
    wait_until(lambda: all(v != "—" for v in all_tiles(page)))
    assert page.get_attribute("#live-status", "data-state") == "live"
    before = all_tiles(page)
    wait_until(lambda: all_tiles(page) != before, timeout=10)
    assert re.fullmatch(r"\d+ s ago", page.inner_text('[data-tile="HKLA"] .tile-age'))

    # The tracks grow with each frame, without a reload.
    grown_from = points(page)
    assert grown_from >= 1
    wait_until(lambda: points(page) >= grown_from + 2, timeout=10)
    assert page.get_attribute("#tracks", "data-points") != str(grown_from)

    # The simulated rig sends FPS; switching to metric converts depths (factor from pint).
    assert page.is_checked("#units-fps")
    assert tile_unit(page, "DBTM") == "ft"
    assert tile_unit(page, "SPPA") == "psi"
    feet = number(tile_value(page, "DBTM"))
    page.click('label[for="units-metric"]')
    wait_until(lambda: tile_unit(page, "DBTM") == "m")
    metres = number(tile_value(page, "DBTM"))
    assert abs(metres - feet * M_PER_FT) < 1.0, (feet, metres)
    assert tile_unit(page, "SPPA") == "kPa"
    assert tile_unit(page, "HKLA") == "kdaN"
    assert "m" in page.inner_text(".track-depth .legend-unit")
    page.click('label[for="units-fps"]')
    wait_until(lambda: tile_unit(page, "DBTM") == "ft")

    # Keyboard: the tracks zoom and pan, and L follows live again.
    page.focus("#tracks")
    page.keyboard.press("[")
    wait_until(lambda: page.get_attribute("#go-live", "aria-pressed") == "false")
    page.keyboard.press("l")
    wait_until(lambda: page.get_attribute("#go-live", "aria-pressed") == "true")

    # The administration page lists the users.
    page.click("#nav-admin")
    page.wait_for_selector('#admin-body tr[data-user="admin"]')
    assert page.url.endswith("/admin")
    page.click("#nav-dashboard")
    page.wait_for_selector("#dashboard-view:not([hidden])")

    assert no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "dashboard-1280x720.png"))  # for a look when it fails

    # Log out: the sign-in form is back, the tokens are gone, a reload does not sign in again.
    page.click("#logout")
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.evaluate("() => sessionStorage.getItem('witskit.session')") is None
    page.reload()
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.is_hidden("#app")


def test_viewer_sees_data_but_not_the_user_administration(browser: Browser, service: RunningService) -> None:
    password = "viewer password 1234"
    created = service.api(
        "POST", "/users", json={"username": "viewer-1", "password": password, "roles": ["viewer"]}
    )
    assert created.status_code == 201, created.text

    page = browser.page(1920, 1080)
    sign_in(page, service.url, "viewer-1", password)
    assert page.is_hidden("#nav-admin")
    assert "viewer" in page.inner_text("#user-name")

    # Keyboard only: focus the rig and press Enter.
    page.locator(".rig", has_text="rig-1").wait_for()
    page.focus(".rig")
    page.keyboard.press("Enter")
    page.wait_for_selector('.rig[aria-pressed="true"]')
    wait_until(lambda: all(v != "—" for v in all_tiles(page)))
    wait_until(lambda: points(page) >= 2)
    assert no_horizontal_scroll(page)

    # The administration page refuses, without asking the API for the user list.
    page.goto(f"{service.url}/admin")
    page.wait_for_selector("#admin-denied:not([hidden])")
    assert page.is_hidden("#admin-body")
    assert "users:admin" in page.inner_text("#admin-denied")
    assert not [u for u in browser.requests if "/api/v1/users" in u or "/api/v1/api-keys" in u]
    # And the API would have refused anyway.
    token = service.token("viewer-1", password)
    assert service.api("GET", "/users", token).status_code == 403


def test_wall_screen_uses_an_api_key_from_the_url_fragment(browser: Browser, service: RunningService) -> None:
    created = service.api("POST", "/api-keys", json={"name": "control-room wall", "roles": ["viewer"]})
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    page = browser.page(1920, 1080)
    page.goto(f"{service.url}/#key={key}&rig=rig-1&units=metric")
    page.wait_for_selector("#app:not([hidden])")
    # The key is taken out of the address bar at once (and a fragment never reaches the server).
    assert "key=" not in page.url
    assert page.inner_text("#logout") == "Forget key"
    page.wait_for_selector('.rig[aria-pressed="true"]')
    wait_until(lambda: all(v != "—" for v in all_tiles(page)))
    assert tile_unit(page, "DBTM") == "m"
    assert page.get_attribute("#live-status", "data-state") == "live"
    before = all_tiles(page)
    wait_until(lambda: all_tiles(page) != before, timeout=10)
    assert page.is_hidden("#nav-admin")


def test_a_restarted_service_is_reconnected_to_without_a_reload(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("witskit-restart")
    first = start_service(data_dir)
    try:
        page = browser.page(1280, 720)
        sign_in(page, first.url, first.admin, first.password)
        pick_rig(page)
        wait_until(lambda: page.get_attribute("#live-status", "data-state") == "live")
        # While the service is away the page says so and keeps trying (the browser logs each
        # refused connection: expected here).
        browser.expect(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")
        stop_service(first.process)
        wait_until(lambda: page.get_attribute("#live-status", "data-state") in ("waiting", "connecting"))
        assert "Reconnecting" in page.inner_text("#live-text") or "Connecting" in page.inner_text(
            "#live-text"
        )
        port = int(first.url.rsplit(":", 1)[1])
        second = start_service(data_dir, port=port, password=first.password)
        try:
            # Same signing key (kept in the data directory): the session survives the restart.
            wait_until(lambda: page.get_attribute("#live-status", "data-state") == "live", timeout=25)
            before = points(page)
            wait_until(lambda: points(page) > before, timeout=10)
            assert page.is_visible("#app")
        finally:
            stop_service(second.process)
    finally:
        stop_service(first.process)
