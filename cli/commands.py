"""What both command-line tools share."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click


def json_command(
    group: click.Group, name: str, options_type: type[Any], **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand of `group` that also takes --json after its own name,
    setting `json` on the root context's `options_type` object."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_root().ensure_object(options_type).json = True

    def decorate(function: Callable[..., Any]) -> click.Command:
        made = group.command(name, **kwargs)(function)
        made.params.append(
            click.Option(
                ["--json", "json_output"],
                is_flag=True,
                expose_value=False,
                callback=set_json,
                help="Print machine-readable JSON on stdout (as the global --json).",
            )
        )
        return made

    return decorate


def emit(data: Any, human: Callable[[], None]) -> None:
    """JSON on stdout under --json (the root context's options), else the human form."""
    if getattr(click.get_current_context().find_root().obj, "json", False):
        click.echo(json.dumps(data, indent=2))
    else:
        human()


def note(message: str) -> None:
    """Progress and remarks go to stderr, so stdout stays parseable."""
    click.echo(message, err=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str | None = None) -> None:
    """Columns padded to their widest cell; `empty` (to stderr) instead of a table of no rows, when given."""
    if not rows and empty is not None:
        note(empty)
        return
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())
