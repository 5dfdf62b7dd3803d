"""Names a package exports but imports on first use (PEP 562), so importing the package stays light.

In a package's ``__init__.py``, after its ``__all__``::

    __getattr__, __dir__ = lazy_exports(__name__, {"DrillingSimulator": "witskit.sim.model"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each name to its module.

    A name is imported from its module when first looked up, then kept in the package's namespace,
    so later lookups are plain attribute reads.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
