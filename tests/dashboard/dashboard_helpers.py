"""Helpers of the dashboard tests: the service in a subprocess, the browser, waiting.

The service is started exactly as a user starts it (``witskit run``, a simulated rig, a fresh data
directory, nothing from the environment), through ``serve_dashboard.py``, which only makes sure the
app includes the dashboard. The URL and the generated administrator's credentials are read from
what it prints.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from support.auth import login

CHROMIUM = os.environ.get("WITSKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCHER = Path(__file__).with_name("serve_dashboard.py")
#: How long the service may take to print its URL and credentials.
START_TIMEOUT = 45.0


def browser_missing() -> str | None:
    """Why the browser tests cannot run, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright; never `playwright install`)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    return None


@dataclass
class RunningService:
    """A ``witskit run`` process: where it listens and its first administrator."""

    url: str
    admin: str
    password: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """An access token (the administrator's by default)."""
        return login(self.url, username or self.admin, password or self.password)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """A request to the API with a bearer token (the administrator's by default)."""
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)


def _clean_env(data_dir: Path) -> dict[str, str]:
    # Nothing from the developer's settings: no WITS_* variable, a fresh data directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update(
        {
            "WITS_DATA_DIR": str(data_dir),
            "WITS_LOG_LEVEL": "WARNING",
            "WITS_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_service(
    data_dir: Path, port: int = 0, password: str | None = None, config: Path | None = None
) -> RunningService:
    """Start ``witskit run`` on 127.0.0.1:``port`` with its data in ``data_dir``; wait until it serves.

    On a first start the generated administrator's credentials are read from its output; on a
    restart (the administrator exists) pass the ``password`` known from the first. ``config`` is a
    pipeline file (``--config``) instead of the simulated rig.
    """
    extra = ["--config", str(config)] if config is not None else []
    process = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "run", "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=data_dir,  # no .env of the developer's is read
        env=_clean_env(data_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()
    assert process.stderr is not None
    stderr = process.stderr
    patterns = {
        "url": re.compile(r"WitsKit is serving at (http://\S+)"),
        "user": re.compile(r"^\s*user name:\s*(\S+)"),
        "password": re.compile(r"^\s*password:\s*(\S+)"),
    }
    wanted = {"url"} if password is not None else set(patterns)

    def drain() -> None:
        # Read everything it prints (a full pipe would block the service); ready once the URL
        # (and on a first start the credentials) have been printed.
        for line in stderr:
            lines.append(line.rstrip("\n"))
            for name, pattern in patterns.items():
                match = pattern.search(line)
                if match and name not in found:
                    found[name] = match.group(1)
            if wanted <= found.keys():
                ready.set()
        ready.set()
        stderr.close()

    threading.Thread(target=drain, name="witskit-stderr", daemon=True).start()
    ready.wait(START_TIMEOUT)
    if wanted <= found.keys():
        return RunningService(
            found["url"], found.get("user", "admin"), password or found["password"], process, lines
        )
    stop_service(process)
    text = "\n".join(lines)
    raise AssertionError(f"witskit run did not print its URL and credentials:\n{text[-4000:]}")


def backfill(
    data_dir: Path, source: str, start: datetime, end: datetime, every: float
) -> tuple[datetime, datetime]:
    """Store a simulated rig's frames (record 1, one every ``every`` s) from ``start`` to ``end``,
    straight into the service's database before it starts: frames with DATE/TIME in the past."""
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator
    from witskit.storage import Store

    steps = int((end - start).total_seconds() / every)
    data = b"".join(DrillingSimulator(11, start=start, rate=1 / every, records=(1,)).frames(steps))
    frames = [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]

    async def write() -> None:
        async with await Store.open(f"sqlite:///{data_dir / 'witskit.db'}") as store:
            await store.write(frames)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    worker = threading.Thread(target=asyncio.run, args=(write(),), name="backfill")
    worker.start()
    worker.join()
    return frames[0].timestamp, frames[-1].timestamp


def stop_service(process: subprocess.Popen[str]) -> None:
    """SIGTERM (a clean drain and exit), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Browser:
    """A fresh browser context (a new profile), and everything its pages logged that a user must not see."""

    context: Any
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def page(self, width: int = 1280, height: int = 720) -> Any:
        """A new tab (its own sessionStorage: a separate sign-in) of the given viewport size."""
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.set_default_timeout(15000)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("request", lambda r: self.requests.append(r.url))
        return page

    def expect(self, pattern: str) -> None:
        """Problems matching ``pattern`` are expected (the test causes them)."""
        self.expected.append(re.compile(pattern))

    def _request_failed(self, request: Any) -> None:
        # A navigation (or a rig change) cancels requests in flight: that is not a failure.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def _console(self, message: Any) -> None:
        # Chromium reports failed loads (a 401, a 404) as console errors too: none is expected.
        if message.type in ("error", "warning"):
            self.problems.append(f"console.{message.type}: {message.text}")


#: The dashboard's static files, served to the harness page as they are (no service needed).
STATIC = Path(__file__).resolve().parents[2] / "src" / "witskit" / "service" / "static"
#: Where the harness page appears to come from (requests to it never leave the browser).
HARNESS_ORIGIN = "http://witskit.test"
_HARNESS_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


def harness_page(browser: Browser, width: int, height: int, body: str = "") -> Any:
    """A page with the dashboard's stylesheets and uPlot, whose scripts import ``/static/js/*.js``.

    For tests of one part of the page (a chart, an axis) on data the test chooses: the files are
    answered from ``STATIC`` by Playwright, so no service runs. ``body`` is the page's markup.
    """
    page = browser.page(width, height)
    html = (
        '<!doctype html><html lang="en" data-theme="dark"><head><meta charset="utf-8">'
        '<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/vendor/uplot/uPlot.iife.min.js"></script>'
        f"</head><body>{body}</body></html>"
    )

    def answer(route: Any) -> None:
        path = route.request.url.removeprefix(HARNESS_ORIGIN).split("?")[0]
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
            return
        file = (STATIC / path.removeprefix("/static/")).resolve()
        if not path.startswith("/static/") or STATIC not in file.parents or not file.is_file():
            route.fulfill(status=404, body="not found")
            return
        route.fulfill(body=file.read_bytes(), content_type=_HARNESS_TYPES.get(file.suffix, "text/plain"))

    page.route(f"{HARNESS_ORIGIN}/**", answer)
    page.goto(f"{HARNESS_ORIGIN}/")
    page.wait_for_function("() => typeof uPlot === 'function'")
    return page


# Signing in, picking a rig, and a rig that pushes crafted frames ---------------------------------
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


def frame_bytes(at: datetime, items: dict[str, str]) -> bytes:
    """One WITS frame of record 1 at ``at`` (DATE/TIME items first), the values as sent."""
    lines = [f"0105{at:%y%m%d}", f"0106{at:%H%M%S}", *(code + value for code, value in items.items())]
    return ("&&\r\n" + "".join(f"{line}\r\n" for line in lines) + "!!\r\n").encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
