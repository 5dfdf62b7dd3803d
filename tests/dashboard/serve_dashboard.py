"""``witskit`` with the dashboard in the app: ``python serve_dashboard.py run --port 0``.

The command line is the real one; the only difference is that the app factory's result goes
through :func:`witskit.service.dashboard.install_dashboard`, which does nothing once the factory
includes the dashboard router itself.
"""

from __future__ import annotations

import sys

import witskit.service.app as app_module
from witskit.cli import main
from witskit.service.dashboard import install_dashboard

_create_app = app_module.create_app


def _create_app_with_dashboard(service):  # type: ignore[no-untyped-def]
    return install_dashboard(_create_app(service))


app_module.create_app = _create_app_with_dashboard

if __name__ == "__main__":
    sys.argv[0] = "witskit"
    main()
