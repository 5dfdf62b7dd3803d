"""``witskit analyze``: drilling analytics over a file or a stored range.

Each analysis adds its command from its own module (``register(group)``).
"""

from __future__ import annotations

import typer

from witskit.cli import _analyze_quality

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` group and its commands to the ``witskit`` app."""
    group = typer.Typer(help="Drilling analytics over a WITS file or a stored range.", no_args_is_help=True)
    app.add_typer(group, name="analyze", short_help="Data quality (and more) of a file or a stored range.")
    _analyze_quality.register(group)
