"""URL schemes of sources that a package above :mod:`witskit.transport` serves.

:func:`witskit.transport.open_source` opens the schemes of its own transports (``tcp://``,
``tls://``, ``serial://``, ...). A source served by a higher layer, such as the simulated rig of
:mod:`witskit.sim` (``sim://``), is one transport may not import (docs/architecture.md): instead
the higher layer's owner names it here, by module and class, and ``open_source`` imports that
module when a URL of the scheme is first opened, then calls ``Class.from_url(url, **options)``.

The table is filled by ``witskit/__init__.py``, which Python runs before any ``witskit`` module,
so every caller of ``open_source`` sees the same schemes whatever it imported first. This module
imports only :mod:`witskit.errors`, so every layer may import it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from witskit.errors import UsageError

__all__ = ["SourceScheme", "register_source", "source_scheme", "source_schemes"]

# RFC 3986 section 3.1, lower case only: schemes are compared in lower case.
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


class SourceScheme(NamedTuple):
    """Where the source class of a scheme lives: ``module.cls`` has a ``from_url`` classmethod."""

    module: str
    cls: str


_SOURCES: dict[str, SourceScheme] = {}


def register_source(scheme: str, module: str, cls: str) -> None:
    """Have ``open_source`` open ``scheme://`` URLs with ``module.cls.from_url`` (imported on first use).

    Registering a scheme again replaces it. A scheme of transport's own (``tcp``, ``file``...) is
    opened by transport whatever is registered here.
    """
    if not _SCHEME.fullmatch(scheme):
        raise UsageError(f"{scheme!r} is not a URL scheme (lower case letters, digits, '+', '-', '.')")
    _SOURCES[scheme] = SourceScheme(module, cls)


def source_scheme(scheme: str) -> SourceScheme | None:
    """The registered source of ``scheme``, or ``None``."""
    return _SOURCES.get(scheme)


def source_schemes() -> frozenset[str]:
    """Every registered scheme."""
    return frozenset(_SOURCES)
