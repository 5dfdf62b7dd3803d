"""Container health probe: ``python -m witskit.service.probe`` exits 0 when ``/livez`` answers 200.

Standard library only, so the image needs no curl or wget: it asks the service on this machine, at
``WITS_HEALTH_CHECK_PORT`` when one is set, else ``WITS_PORT`` (8080), over loopback when
``WITS_HOST`` is a wildcard address. Liveness, not
readiness: an orchestrator that restarts a container because its database is down only adds a
restart to the outage.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from typing import Final

__all__ = ["main", "probe_url"]

#: Seconds to wait for the answer (the HEALTHCHECK's own timeout is longer).
TIMEOUT: Final = 3.0
_WILDCARDS: Final = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised, never bound


def probe_url() -> str:
    """The ``/livez`` URL of the service configured by the environment."""
    host = os.environ.get("WITS_HOST", "127.0.0.1").strip()
    port = os.environ.get("WITS_PORT", "8080").strip() or "8080"
    health = os.environ.get("WITS_HEALTH_CHECK_PORT", "").strip()
    if health not in ("", "0"):
        port = health
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/livez"


def main() -> int:
    """0 when the service answers ``/livez`` with 200, else 1."""
    url = probe_url()
    try:
        # The URL is built above from host and port: always http, never a caller-chosen scheme.
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"witskit probe: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
