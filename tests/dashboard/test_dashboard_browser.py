"""The dashboard in a real Chromium against a real ``witskit run`` with its simulated rig.

Each test opens a fresh browser context; any console error or warning, page error or failed request
fails it (see ``conftest.py``). Plain synchronous tests: Playwright's sync API must not run inside an
event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_helpers import (
    Browser,
    RunningService,
    backfill,
    frame_bytes,
    free_port,
    pick_rig,
    sign_in,
    start_service,
    stop_service,
)

from support.waiting import wait_until

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

    # Log out: the sign-in form is back, the tokens are gone, the session is ended on the server
    # (the refresh token the page held is refused), a reload does not sign in again.
    held = json.loads(page.evaluate("() => sessionStorage.getItem('witskit.session')"))["refresh"]
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/logout")) as logout:
        page.click("#logout")
    assert logout.value.status == 204
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.evaluate("() => sessionStorage.getItem('witskit.session')") is None
    refused = httpx.post(f"{service.url}/api/v1/auth/refresh", json={"refresh_token": held}, timeout=10)
    assert refused.status_code == 401, refused.text
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


def visible_share(page: Any, selector: str) -> float:
    """The share of the element's area that is inside the viewport (0 to 1), without scrolling."""
    share: float = page.evaluate(
        """(selector) => {
          const r = document.querySelector(selector).getBoundingClientRect();
          const w = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
          const h = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
          return r.width * r.height > 0 ? (w * h) / (r.width * r.height) : 0;
        }""",
        selector,
    )
    return share


def test_at_1024x768_the_tracks_fill_the_screen_and_a_new_feed_fills_them(
    browser: Browser, service: RunningService, tmp_path: Path
) -> None:
    page = browser.page(1024, 768)
    sign_in(page, service.url, service.admin, service.password)
    # The rig list slides over the tracks on demand, and goes away once a rig is picked.
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"
    page.click("#sidebar-toggle")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "true"
    page.locator(".rig", has_text="rig-1").click()
    page.wait_for_selector("#sidebar", state="hidden")
    assert page.inner_text("#rig-title") == "rig-1"
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"
    wait_until(lambda: points(page) >= 5)

    # The tracks use the screen: all of them in view, most of the height, nothing to scroll to.
    assert visible_share(page, "#tracks") > 0.97
    box = page.locator("#tracks").bounding_box()
    assert box["height"] >= 0.5 * 768, box
    for track in page.locator(".track").all():
        assert visible_share(page, f".track[data-track='{track.get_attribute('data-track')}']") > 0.97
    assert no_horizontal_scroll(page)
    assert page.evaluate("() => document.querySelector('#main').scrollHeight <= innerHeight")

    # The simulated rig began with the service, seconds or minutes ago: the time axis starts at
    # its first frame (and spans a minute at least) instead of an hour ago, where the feed was a
    # sliver at the bottom.
    state = tracks_state(page)
    view = int(state["viewEnd"]) - int(state["viewStart"])
    assert view < 3600, state
    assert 0 <= int(state["dataStart"]) - int(state["viewStart"]) <= max(3, 0.05 * view), state
    assert "first frame" in page.inner_text("#range-text")
    page.screenshot(path=str(tmp_path / "dashboard-1024x768.png"))  # for a look when it fails

    # Keys and the range buttons still do what they say over a young feed.
    page.click('.toolbar [data-span="900"]')
    wait_until(lambda: page.get_attribute('.toolbar [data-span="900"]', "aria-pressed") == "true")
    page.keyboard.press("Escape")
    page.click("#sidebar-toggle")
    page.wait_for_selector("#sidebar", state="visible")
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar", state="hidden")


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


# Long ranges ----------------------------------------------------------------------------------------
DAY = 86400


@dataclass
class Archive:
    """A service with days of stored data: ``rig-archive`` (four days, ending a day ago, stored
    only) and ``rig-1`` (two days up to now, then live from the simulated rig)."""

    service: RunningService
    archive: tuple[datetime, datetime]
    live: tuple[datetime, datetime]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data_dir = tmp_path_factory.mktemp("witskit-archive")
    now = datetime.now(UTC).replace(microsecond=0)
    stored = backfill(data_dir, "rig-archive", now - timedelta(days=5), now - timedelta(days=1), 60)
    live = backfill(data_dir, "rig-1", now - timedelta(days=2), now, 60)
    running = start_service(data_dir)
    try:
        yield Archive(running, stored, live)
    finally:
        stop_service(running.process)


def tracks_state(page: Any) -> dict[str, str]:
    state: dict[str, str] = page.evaluate("() => ({...document.getElementById('tracks').dataset})")
    return state


def shown_span(page: Any) -> int:
    """Seconds between the ends of the time axis, as uPlot has it."""
    state = tracks_state(page)
    return int(state["viewEnd"]) - int(state["viewStart"])


def series_requests(browser: Browser, source: str) -> list[str]:
    return [u for u in browser.requests if "/api/v1/data/series" in u and f"source={source}" in u]


def test_a_stored_rig_shows_its_days_as_bands_and_any_hour_of_them_point_by_point(
    browser: Browser, archive: Archive, tmp_path: Path
) -> None:
    first, last = archive.archive
    page = browser.page(1280, 720)
    sign_in(page, archive.service.url, archive.service.admin, archive.service.password)
    pick_rig(page, "rig-archive")
    # The last hour has nothing of this rig (its data ends a day ago).
    wait_until(lambda: tracks_state(page).get("mode") == "raw")
    assert points(page) == 0

    # All: the four days, as buckets from /data/series; the view does not follow live.
    page.click("#range-all")
    wait_until(lambda: tracks_state(page)["mode"] == "series", timeout=20)
    assert series_requests(browser, "rig-archive")
    assert page.get_attribute("#go-live", "aria-pressed") == "false"
    state = tracks_state(page)
    assert 4 * DAY <= shown_span(page) <= 4.5 * DAY
    assert int(state["viewStart"]) <= first.timestamp()
    assert int(state["viewEnd"]) >= last.timestamp()
    assert int(state["dataStart"]) - first.timestamp() < DAY / 10
    assert last.timestamp() - int(state["dataEnd"]) < DAY / 10
    assert int(state["bucket"]) >= 60
    assert 100 <= int(state["points"]) <= 5000
    assert "min–max per" in page.inner_text("#range-text")
    # The depth track is drawn from the buckets too: hole depth increasing downward.
    wait_until(lambda: int(tracks_state(page)["depthPoints"]) > 10)
    page.screenshot(path=str(tmp_path / "all.png"))  # for a look when it fails

    # Go to an hour two days before the end: every stored row of it (a frame a minute).
    hour = (last - timedelta(days=2)).replace(minute=0, second=0)
    page.click("#goto summary")
    # Opening the form fills it with the range on screen (on its toggle event): then type over it.
    wait_until(lambda: page.input_value("#range-from") != "")
    page.fill("#range-from", hour.strftime("%Y-%m-%dT%H:%M"))  # the browser runs in UTC
    page.fill("#range-to", (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#range-form button[type=submit]")
    wait_until(lambda: tracks_state(page)["mode"] == "raw" and points(page) >= 55)
    state = tracks_state(page)
    assert abs(int(state["viewStart"]) - hour.timestamp()) < 5
    assert shown_span(page) == pytest.approx(3600, abs=5)
    assert hour.timestamp() - 120 <= int(state["dataStart"]) <= hour.timestamp() + 60

    # Zooming out from there past two hours switches to buckets of that time.
    page.focus("#tracks")
    for _ in range(3):
        page.keyboard.press("-")
    wait_until(lambda: tracks_state(page)["mode"] == "series" and shown_span(page) > 7 * 3600, timeout=20)
    state = tracks_state(page)
    assert shown_span(page) == pytest.approx(8 * 3600, abs=5)
    assert int(state["dataStart"]) < hour.timestamp() < int(state["dataEnd"])


def test_a_live_rig_zooms_out_to_its_days_and_keeps_moving(
    browser: Browser, archive: Archive, tmp_path: Path
) -> None:
    first, _ = archive.live
    page = browser.page(1280, 720)
    sign_in(page, archive.service.url, archive.service.admin, archive.service.password)
    pick_rig(page, "rig-1")
    wait_until(lambda: tracks_state(page).get("mode") == "raw" and points(page) >= 30)
    assert not series_requests(browser, "rig-1")

    # Zooming out with the keyboard (each press doubles the span) reaches the two stored days
    # and stops there, still following live.
    page.focus("#tracks")
    for _ in range(8):
        page.keyboard.press("-")
    wait_until(lambda: tracks_state(page)["mode"] == "series" and shown_span(page) > 2 * DAY, timeout=20)
    assert page.get_attribute("#go-live", "aria-pressed") == "true"
    assert shown_span(page) <= 2.2 * DAY
    assert int(tracks_state(page)["dataStart"]) - first.timestamp() < DAY / 10
    assert series_requests(browser, "rig-1")

    # Frames keep arriving over the WebSocket: the newest bucket (computed in the page from the
    # live rows) moves, so the legend's latest hole depth changes without a new request.
    page.locator(".track-depth .legend-value").first.wait_for()
    asked = len(series_requests(browser, "rig-1"))
    before = page.inner_text(".track-depth .legend-value")
    wait_until(lambda: page.inner_text(".track-depth .legend-value") != before, timeout=20)
    assert len(series_requests(browser, "rig-1")) <= asked + 1
    page.screenshot(path=str(tmp_path / "live-days.png"))  # for a look when it fails

    # All, then zooming back in, ends with every point of the last hour again.
    page.click("#range-all")
    wait_until(lambda: shown_span(page) > 2 * DAY)
    page.focus("#tracks")
    for _ in range(6):
        page.keyboard.press("+")
    wait_until(
        lambda: tracks_state(page)["mode"] == "raw" and shown_span(page) < 2 * 3600 and points(page) >= 20
    )
    assert page.get_attribute("#go-live", "aria-pressed") == "true"


def test_on_a_narrow_screen_several_rigs_open_the_rig_list_until_one_is_picked(
    browser: Browser, archive: Archive
) -> None:
    page = browser.page(1024, 768)
    sign_in(page, archive.service.url, archive.service.admin, archive.service.password)
    # Two rigs and none watched before: the list comes up by itself, over the tracks.
    page.wait_for_selector("#sidebar", state="visible")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "true"
    assert page.is_visible("#pick-hint")
    page.locator(".rig", has_text="rig-archive").click()
    page.wait_for_selector("#sidebar", state="hidden")
    assert page.inner_text("#rig-title") == "rig-archive"
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"
    # A click on the tracks closes it too.
    page.click("#sidebar-toggle")
    page.wait_for_selector("#sidebar", state="visible")
    page.mouse.click(900, 600)
    page.wait_for_selector("#sidebar", state="hidden")


# Values that do not fit their item's type (issue 10) ------------------------------------------------
#: A text item is the sender's to choose: it must show as text, never become markup.
MARKUP = '<img src=x onerror="document.body.dataset.pwned=1">'


def shows_markup_as_text(page: Any, selector: str) -> bool:
    shown: bool = page.evaluate(
        "(sel) => { const el = document.querySelector(sel);"
        " return el.querySelector('*') === null && !document.body.dataset.pwned; }",
        selector,
    )
    return shown


def legend_values(page: Any, track: str) -> list[str]:
    values: list[str] = page.locator(f'[data-track="{track}"] .legend-value').all_inner_texts()
    return values


def test_text_and_decimal_values_in_numeric_items_show_in_the_tiles_stored_and_live(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.storage import Store

    data_dir = tmp_path_factory.mktemp("witskit-text")
    now = datetime.now(UTC).replace(microsecond=0)
    # Stored before the start, read back through /api/v1/latest and /api/v1/data: a decimal in
    # the integer RPM item, a text in the float standpipe pressure, numbers around them.
    stored = b"".join(
        frame_bytes(
            now - timedelta(seconds=120 - 10 * i), {"0108": f"{1000 + i}.5", "0120": "95", "0121": "2100"}
        )
        for i in range(5)
    ) + frame_bytes(now - timedelta(seconds=60), {"0108": "1005.5", "0120": "95.3", "0121": MARKUP})
    frames = [f for f in iter_decode(stored, source="rig-stored") if isinstance(f, DecodedFrame)]
    assert len(frames) == 6

    async def write() -> None:
        async with await Store.open(f"sqlite:///{data_dir / 'witskit.db'}") as store:
            await store.write(frames)

    worker = threading.Thread(target=asyncio.run, args=(write(),), name="store-text")
    worker.start()
    worker.join()

    port = free_port()
    config = data_dir / "pipeline.yaml"
    config.write_text(
        f"sources:\n  - url: tcp-listen://127.0.0.1:{port}\n"
        '    options: {peer_names: {"127.0.0.1": rig-live}}\n'
    )
    running = start_service(data_dir, config=config)
    try:
        page = browser.page(1280, 720)
        sign_in(page, running.url, running.admin, running.password)
        pick_rig(page, "rig-stored")
        wait_until(lambda: tile_value(page, "RPMA") == "95.3")
        wait_until(lambda: tile_value(page, "SPPA") != "—")
        assert MARKUP.startswith(tile_value(page, "SPPA").rstrip("…"))
        assert page.get_attribute('[data-tile="SPPA"] .tile-value', "title") == MARKUP
        assert shows_markup_as_text(page, '[data-tile="SPPA"] .tile-value')
        assert tile_unit(page, "SPPA") == ""
        assert page.inner_text('[data-tile="SPPA"] .tile-age').startswith("text · ")
        assert tile_value(page, "DBTM") == "1,005.5"
        # The stored rows are drawn (the text as a gap in the line, not a zero); the legends
        # show the newest readings, the text too.
        wait_until(lambda: points(page) >= 6)
        wait_until(lambda: legend_values(page, "rotary")[0] == "95.3")
        spp = page.locator('[data-track="hydraulics"] .legend-value').first
        assert MARKUP.startswith(spp.inner_text().rstrip("…"))
        assert spp.get_attribute("title") == MARKUP
        assert shows_markup_as_text(page, '[data-track="hydraulics"] .legend-value')
        page.screenshot(path=str(tmp_path / "text-stored.png"))  # for a look when it fails

        # Live, over the WebSocket: a first frame makes the rig known, the next one brings a
        # decimal RPM and a text pressure.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as rig:
            rig.sendall(frame_bytes(datetime.now(UTC), {"0108": "2000.5", "0120": "120", "0121": "2500"}))
            pick_rig(page, "rig-live")
            wait_until(lambda: page.get_attribute("#live-status", "data-state") == "live")
            wait_until(lambda: tile_value(page, "RPMA") == "120")
            rig.sendall(frame_bytes(datetime.now(UTC), {"0108": "2001.5", "0120": "87.25", "0121": "n/a"}))
            wait_until(lambda: tile_value(page, "RPMA") == "87.25")
            wait_until(lambda: tile_value(page, "SPPA") == "n/a")
            assert tile_unit(page, "RPMA") == "rpm"
            wait_until(lambda: legend_values(page, "hydraulics")[0] == "n/a")
            assert legend_values(page, "rotary")[0] == "87.25"
            page.screenshot(path=str(tmp_path / "text-values.png"))  # for a look when it fails
        page.close()  # before the service stops: its requests would fail
    finally:
        stop_service(running.process)


def test_the_download_menu_saves_las_and_witsml_of_the_rig_and_window(
    browser: Browser, service: RunningService, tmp_path: Path
) -> None:
    """Download: the request carries the view window and the session's credential (not in the URL);
    the browser saves the service's document under the service's file name, through a blob link."""
    import lasio
    from lxml import etree

    page = browser.page(1280, 720)
    sign_in(page, service.url, service.admin, service.password)
    pick_rig(page)
    wait_until(lambda: points(page) >= 3, timeout=15)
    page.click("#download summary")
    with page.expect_download() as las_download:
        page.click('[data-download="las-time"]')
    las_file = las_download.value
    assert las_file.suggested_filename == "rig-1_time.las"
    assert las_file.url.startswith("blob:")
    saved = tmp_path / las_file.suggested_filename
    las_file.save_as(saved)
    las = lasio.read(saved)
    assert [c.mnemonic for c in las.curves][:3] == ["TIME", "DBTM", "DMEA"]
    assert len(las["TIME"]) >= 3
    wait_until(lambda: page.inner_text("#download-status") == "Downloaded rig-1_time.las")
    assert not page.locator("#download").get_attribute("open")  # the menu closed

    # The request: the rig, the tracks' channels and the window on screen, the credential in a
    # header (a URL would end up in logs and history).
    [url] = [u for u in browser.requests if "/api/v1/data/las" in u]
    query = dict(httpx.URL(url).params)
    assert query["source"] == "rig-1"
    assert query["index"] == "time"
    assert query["codes"].split(",")[:3] == ["0108", "0110", "0113"]
    assert "token" not in query
    start = datetime.fromisoformat(query["start"]).timestamp()
    view_start = int(page.get_attribute("#tracks", "data-view-start") or 0)
    assert abs(start - view_start) < 120, (query, view_start)

    page.click("#download summary")
    with page.expect_download() as xml_download:
        page.click('[data-download="witsml-20"]')
    xml_file = xml_download.value
    assert xml_file.suggested_filename == "rig-1_time.xml"
    root = etree.fromstring(Path(xml_file.path()).read_bytes())
    assert etree.QName(root).localname == "Log"
    assert root.find(".//{*}ChannelSet") is not None
