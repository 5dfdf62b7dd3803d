"""Help screens in plain words: no Python types (``<bool>``, ``<list[str]>``) and no ``{files}``.

typer labels every parameter without a metavar with its Python annotation. Instead of giving each
of the ~70 options a metavar by hand, :func:`plain_help` swaps in command classes whose parameters
are shown as click shows them: ``TEXT``, ``INTEGER``, ``PATH``, ``[table|csv|jsonl]``, nothing for
a flag, and ``FILES...`` for an argument.
"""

from __future__ import annotations

from typing import Any

import typer
from typer import _click as click  # typer vendors its own click; its commands are built on it
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["plain_help"]


_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "PATH", "Path": "PATH"}


def _label(typer_label: str) -> str | None:
    """typer's ``<list[str]>`` as ``TEXT...``, ``<int range>`` as ``INTEGER``, ``<a|b>`` as ``[a|b]``."""
    label = typer_label.strip("<>")
    many = label.startswith("list[") and label.endswith("]")
    if many:
        label = label[5:-1]
    label = label.removesuffix(" range")
    if label == "bool":
        return None
    if "|" in label:
        out = f"[{label}]"
    else:
        out = _NAMES.get(label, label.upper())
    return out + "..." if many else out


class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        label = _label(self.display_type(ctx))
        # A repeatable option takes one value each time: TEXT, not TEXT...
        return label.removesuffix("...") if label and self.multiple else label


class _PlainArgument(TyperArgument):
    def _name(self) -> str:
        return self.metavar or (self.name or "ARG").upper()

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None  # the name column says it all: FILES..., PATH

    def _rich_display_name(self) -> str:
        return self._name() + ("..." if self.nargs != 1 and not self._name().endswith("...") else "")

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        name = self._rich_display_name()
        return [name if self.required else f"[{name}]"]


def _plain(params: list[click.Parameter]) -> list[click.Parameter]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    return params


class _PlainCommand(TyperCommand):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _plain(super().get_params(ctx))


class _PlainGroup(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _plain(super().get_params(ctx))


def plain_help(app: typer.Typer) -> None:
    """Give ``app``, its commands and its sub-apps (recursively) the plain help classes."""
    if app.info.cls in (None, TyperGroup) or isinstance(app.info.cls, typer.models.DefaultPlaceholder):
        app.info.cls = _PlainGroup
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _PlainCommand
    for group in app.registered_groups:
        sub: Any = group.typer_instance
        if sub is not None:
            plain_help(sub)
        if group.cls in (None, TyperGroup) or isinstance(group.cls, typer.models.DefaultPlaceholder):
            group.cls = _PlainGroup
