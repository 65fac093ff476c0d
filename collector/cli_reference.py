"""The command reference in Markdown, rendered from the CLI itself: ``python -m collector.cli_reference``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from collector.cli import EXIT_CODES, app

__all__ = ["commands", "render", "sections"]

_PROG = "evidence-collector"


def commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every visible command and group of the app with its path of names, depth first, in the help's order."""
    command = typer.main.get_command(app) if command is None else command
    yield path, command
    if isinstance(command, TyperGroup):
        ctx = typer.Context(command, info_name=path[-1] if path else _PROG)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(params: list[Any], ctx: typer.Context) -> list[str]:
    """One table row per parameter from click's own help record: names and value, help with default and
    environment variable."""
    records = [p.get_help_record(ctx) for p in params]
    return [f"| `{_cell(names)}` | {_cell(text)} |" for names, text in (r for r in records if r is not None)]


def _section(path: tuple[str, ...], command: Any) -> list[str]:
    ctx = typer.Context(command, info_name=" ".join((_PROG, *path)))
    lines = [f"{'#' * max(2, len(path) + 1)} `{' '.join((_PROG, *path))}`", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```", f"{' '.join((_PROG, *path))} {usage}".rstrip(), "```", ""]
    arguments = _rows([p for p in command.params if isinstance(p, TyperArgument)], ctx)
    options = _rows([p for p in command.params if isinstance(p, TyperOption)], ctx)
    if arguments:
        lines += ["| Argument | Description |", "|---|---|", *arguments, ""]
    if options:
        lines += ["| Option | Description |", "|---|---|", *options, ""]
    if isinstance(command, TyperGroup):
        subs = [(name, command.get_command(ctx, name)) for name in command.list_commands(ctx)]
        rows = [f"| `{name}` | {_cell(sub.get_short_help_str(200))} |" for name, sub in subs if sub and not sub.hidden]
        lines += ["| Command | Summary |", "|---|---|", *rows, ""]
    return lines


def sections() -> str:
    """Every command and sub-command (the root first), then the exit codes: the body of the reference, to go
    under a page's own title."""
    lines: list[str] = []
    for path, command in commands():
        lines += _section(path, command)
    lines += ["## Exit codes", "", "| Code | Meaning |", "|---|---|"]
    lines += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole reference as a page of its own."""
    return "# Command reference\n\nGenerated from the CLI by `python -m collector.cli_reference`.\n\n" + sections()


if __name__ == "__main__":
    sys.stdout.write(render())
