"""A command group that imports a command's module only when that command runs.

`oncolit --help` lists every command from a table of (where it lives, its one-line help) without importing
any of them; `oncolit records show ...` imports `oncolit.cli.records_cmd` and nothing else of the CLI. The
imported command is built exactly as `Typer.add_typer` / `Typer.command` would have built it, so its
options, help and behaviour do not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

# Typer (0.29) carries its own copy of click: the classes below are Typer's, and the types are written as
# `Any` rather than the `click` package's, which Typer no longer uses.

# Where a command lives: "package.module:attribute" (a `typer.Typer` -> a command group, a function -> one
# command), or a function returning that object (for an import a static checker must see).
Target = str | Callable[[], Any]


def load_target(target: Target) -> Any:
    if callable(target):
        return target()
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def keep_indents(help_text: str | None) -> str | None:
    """Help whose examples keep their indentation. Typer's rich help dedents everything after the first
    paragraph as one block, by the indentation of its lines after the first: an "Examples:" paragraph right
    after the summary loses the indent of every example under it. A blank line in front of that block makes
    it the block's first line, so the indents are measured from "Examples:" itself (and the blank is
    dropped). Line breaks are kept either way; `tests/test_cli_messages.py` checks the rendered help."""
    if not help_text:
        return help_text
    first, sep, rest = help_text.partition("\n\n")
    if not sep or rest.startswith("\n"):
        return help_text
    return f"{first}\n\n\n{rest}"


def _keep_indents_everywhere(command: Any) -> Any:
    command.help = keep_indents(command.help)
    for sub in getattr(command, "commands", {}).values():
        _keep_indents_everywhere(sub)
    return command


def build_command(name: str, obj: Any, rich_markup_mode: Any = None) -> Any:
    """The click command `Typer.add_typer(obj, name=name)` (a Typer app) or `Typer.command(name)(obj)` (a
    function) would have mounted under `name`, with `keep_indents` help."""
    holder = typer.Typer(rich_markup_mode=rich_markup_mode)
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name)
    else:
        holder.command(name)(obj)
    return _keep_indents_everywhere(typer.main.get_group(holder).commands[name])


class LazyGroup(TyperGroup):
    """A `TyperGroup` whose commands come from `entries` (name -> (target, first paragraph of its help)),
    imported on first use. While the group's own help is written, listed commands are stand-ins carrying
    the help line, so listing imports nothing. `tests/test_cli_lazy.py` checks the lines against the real
    commands."""

    entries: ClassVar[Mapping[str, tuple[Target, str]]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*self.entries, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in self.entries:
            return None
        target, help_line = self.entries[cmd_name]
        if self._listing:
            return TyperCommand(name=cmd_name, help=help_line)
        command = build_command(cmd_name, load_target(target), self.rich_markup_mode)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Typer's; for a name that is no command, the close matches are loaded first, so that its "Did you mean
        ...?" (drawn from the commands loaded) names the same ones as when every command was imported."""
        names = self.list_commands(ctx)
        if args and self.suggest_commands and args[0] not in names:
            for name in get_close_matches(args[0], names):
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def lazy_group(entries: Mapping[str, tuple[Target, str]]) -> type[LazyGroup]:
    """A `LazyGroup` class over `entries`, to pass as `typer.Typer(cls=...)`."""
    return type("OncoLitGroup", (LazyGroup,), {"entries": dict(entries)})
