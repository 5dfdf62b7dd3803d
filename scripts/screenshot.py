"""Take the dashboard screenshot shown in the README (``docs/img/dashboard.png``).

It starts the real service on 127.0.0.1 (a free port, a temporary data directory) ingesting one
simulated rig whose clock starts an hour in the past: that hour is sent at once (the pipeline
stores it like any feed) and the rig then carries on in real time, so the tracks show an hour of
drilling and the tiles are live. It then signs in with Debian's Chromium (Playwright, no browser
download), picks the rig and saves a screenshot::

    python scripts/screenshot.py                      # docs/img/dashboard.png, 1920x1080
    python scripts/screenshot.py --size 1280x720 -o /tmp/laptop.png --theme light
    python scripts/screenshot.py --history 90 -o /tmp/new-feed.png    # a feed 90 s old

Needs ``pip install playwright`` and ``apt-get install chromium`` (``--chromium`` for another path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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


def _backfilling_source(history: float, seed: int) -> Any:
    """A simulated rig whose clock starts ``history`` seconds ago and catches up at once."""
    from witskit.protocol import FrameParser
    from witskit.sim.model import DrillingSimulator
    from witskit.sim.source import SimulatorSource

    class BackfillingSimulator(SimulatorSource):
        async def events(self) -> AsyncIterator[Any]:
            now = datetime.now(UTC).replace(microsecond=0)
            start = now - timedelta(seconds=history)
            sim = DrillingSimulator(seed, start=start, rate=self.rate, records=self.records)
            parser = FrameParser(source=self.name)
            wall0 = time.monotonic()
            for n, (sim_time, data) in enumerate(sim.events(None)):
                delay = (sim_time - now).total_seconds() - (time.monotonic() - wall0)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closed.wait(), delay)
                elif n % 200 == 0:
                    await asyncio.sleep(0)  # the past is replayed at full speed; let the API breathe
                if self._closed.is_set():
                    break
                for event in parser.feed(data):
                    yield event

    return BackfillingSimulator


@contextlib.contextmanager
def running_service(data_dir: Path, history: float, seed: int) -> Iterator[tuple[str, str, str]]:
    """Serve a backfilled simulated rig; yield (url, admin user, admin password)."""
    import witskit.service.app as app_module
    from witskit.config import PipelineConfig, SourceConfig, WitsConfig
    from witskit.service import connections
    from witskit.service.dashboard import install_dashboard
    from witskit.service.runtime import Bound, serve

    source_class = _backfilling_source(history, seed)
    original_open = connections.open_named_source

    def open_named_source(url: str, name: str | None = None, options: Any = None, **kw: Any) -> Any:
        if url.startswith("sim://"):
            source = source_class.from_url(url)
            source.name = name or source.name
            return source
        return original_open(url, name, options, **kw)

    connections.open_named_source = open_named_source
    original_create = app_module.create_app
    # Until the app factory includes the dashboard itself (then this does nothing).
    app_module.create_app = lambda service: install_dashboard(original_create(service))

    password = secrets.token_urlsafe(18)
    config = WitsConfig(
        _env_file=None,
        data_dir=data_dir,
        admin_username="admin",
        admin_password=password,
        metrics_enabled=False,
        log_level="WARNING",
    )
    pipeline = PipelineConfig(sources=[SourceConfig(url="sim://rig-1?rate=1", name="rig-1")])
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        box["loop"], box["stop"] = loop, stop

        def on_ready(bound: Bound) -> None:
            box["url"] = bound.url
            ready.set()

        try:
            loop.run_until_complete(
                serve(
                    config,
                    pipeline=pipeline,
                    host="127.0.0.1",
                    port=0,
                    on_ready=on_ready,
                    stop=stop,
                    handle_signals=False,
                )
            )
        except BaseException as exc:
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="witskit-service", daemon=True)
    thread.start()
    try:
        if not ready.wait(60) or "error" in box:
            raise SystemExit(f"the service did not start: {box.get('error')}")
        yield box["url"], "admin", password
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        connections.open_named_source = original_open
        app_module.create_app = original_create


def take(
    url: str,
    user: str,
    password: str,
    output: Path,
    size: tuple[int, int],
    theme: str,
    chromium: str,
    history: float = 3600.0,
) -> None:
    """Sign in, pick rig-1, let the tracks fill, and save the screenshot."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="witskit-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": size[0], "height": size[1]},
            color_scheme="light" if theme == "light" else "dark",
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The rig is picked from the address (on a narrow screen the rig list is tucked away).
            page.goto(f"{url}/#theme={theme}&units=fps&rig=rig-1")
            page.fill("#login-user", user)
            page.fill("#login-password", password)
            page.click("#login-submit")
            page.wait_for_function("() => document.querySelector('#rig-title').textContent === 'rig-1'")
            # Wait for the history (an hour at most is on screen) and a few live frames.
            wanted = int(min(3000, history * 0.8))
            page.wait_for_function(
                f"() => Number(document.querySelector('#tracks').dataset.points) > {wanted}", timeout=60000
            )
            page.wait_for_timeout(3000)
            page.mouse.move(size[0] * 0.55, size[1] * 0.72)  # a cursor line across the tracks
            page.wait_for_timeout(300)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
        finally:
            context.close()
    if errors:
        raise SystemExit("the page logged errors:\n" + "\n".join(errors))


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    parser.add_argument("--size", default="1920x1080", help="viewport WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--theme", choices=["dark", "light"], default="dark")
    # Seed 6, 69 minutes in: the hour on screen has drilling, a connection, and drilling again.
    parser.add_argument("--history", type=float, default=4140.0, help="seconds of simulated history")
    parser.add_argument("--seed", type=int, default=6, help="the simulated rig's seed")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    if not Path(args.chromium).exists():
        sys.stderr.write(f"{args.chromium} not found: apt-get install chromium\n")
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="witskit-screenshot-") as tmp,
        running_service(Path(tmp), args.history, args.seed) as (url, user, password),
    ):
        size = (int(width), int(height))
        take(url, user, password, args.output, size, args.theme, args.chromium, args.history)
    sys.stderr.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
