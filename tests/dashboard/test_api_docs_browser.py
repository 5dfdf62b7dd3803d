"""``/docs`` in a real Chromium against ``witskit run``: Swagger UI draws the API from this origin
only (no CDN), breaks no CSP rule (any console error fails the test), and an authorization typed
into it is not written to ``localStorage``."""

from __future__ import annotations

from urllib.parse import urlsplit

from dashboard_helpers import Browser, RunningService

from support.waiting import wait_until


def test_the_api_docs_work_from_this_origin_and_keep_no_credential(
    browser: Browser, service: RunningService
) -> None:
    page = browser.page()
    page.goto(f"{service.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "WitsKit" in page.inner_text(".swagger-ui .info .title")
    wait_until(lambda: page.locator(".opblock-summary-path").count() > 10)
    origin = urlsplit(service.url).netloc
    assert browser.requests
    assert [u for u in browser.requests if urlsplit(u).netloc != origin and not u.startswith("data:")] == []
    # What "Authorize" keeps, it keeps in memory.
    page.evaluate("window.ui.preauthorizeApiKey('APIKeyHeader', 'wk_not_a_real_key_0000000000')")
    assert page.evaluate("window.ui.authSelectors.authorized().toJS()")
    assert page.evaluate("Object.keys(window.localStorage)") == []
