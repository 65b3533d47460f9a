"""The Typer application object and the consoles every command prints through."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

app = typer.Typer(
    name="faceid",
    help="Face identification: detect, embed, verify, enroll and find faces on real models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def print_json(data: object) -> None:
    console.print_json(json.dumps(data))


def progress_bar(out: Console, elapsed: bool = False) -> Progress:
    """The CLI's one progress bar style: done/total, and time left (or time spent)."""
    clock = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        clock,
        console=out,
        transient=True,
    )
