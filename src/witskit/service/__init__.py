"""The secure service: HTTP API, WebSocket, accounts and audit, around the ingest pipeline.

``witskit run`` ingests and serves in one process, ``witskit serve`` serves a store (see
``docs/service.md``). Modules:

- :mod:`~witskit.service.runtime`: :class:`Service`, everything one process serves
- :mod:`~witskit.service.server`: :func:`serve`, the ports and uvicorn
- :mod:`~witskit.service.ingest`, :mod:`~witskit.service.observe`: the pipeline it builds and watches
- :mod:`~witskit.service.datadir`: the data directory and the JWT signing key kept there
- :mod:`~witskit.service.app`: the FastAPI application factory, request ids, error mapping
- :mod:`~witskit.service.deps`: the routes' context, authentication and the permission every route
  declares
- :mod:`~witskit.service.side_app`: ``/livez``, ``/readyz`` and ``/metrics`` on the side ports
- :mod:`~witskit.service.identity`: logins, tokens, API keys, account changes
- :mod:`~witskit.service.accounts`: the users and API keys, and the store of all the service's tables
- :mod:`~witskit.service.audit`, :mod:`~witskit.service.throttling`, :mod:`~witskit.service.sessions`:
  the audit trail, login throttling, refresh sessions (each with its table)
- :mod:`~witskit.service.routes`, :mod:`~witskit.service.websocket`: the API itself
- :mod:`~witskit.service.connections`, :mod:`~witskit.service.latest`, :mod:`~witskit.service.export`

It needs the ``server`` extra (FastAPI, uvicorn, ...). The names below are imported on first use,
so ``import witskit.service`` alone costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from witskit.service.app import create_app
    from witskit.service.identity import Identity, Principal
    from witskit.service.runtime import Service
    from witskit.service.server import serve

_LAZY: dict[str, str] = {
    "Identity": "witskit.service.identity",
    "Principal": "witskit.service.identity",
    "Service": "witskit.service.runtime",
    "create_app": "witskit.service.app",
    "serve": "witskit.service.server",
}

__all__ = ["Identity", "Principal", "Service", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'witskit.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
