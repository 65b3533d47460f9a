"""The ``faceid`` command line: one Typer app, verbs grouped by module."""

from __future__ import annotations

import sys

from rich.markup import escape

from ..errors import FaceIDError
from . import (  # noqa: F401  (register verbs)
    analyze_cmds,
    calibrate_cmds,
    eval_cmds,
    gallery_cmds,
    learn_cmds,
    models_cmds,
    pipeline_cmds,
    serve_cmds,
    worker_cmds,
)
from .app import app, console, err_console


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except FaceIDError as exc:
        err_console.print(f"[red]error[/red] {escape(f'[{exc.code}] {exc.message}')}")
        sys.exit(1)  # as for --server errors; 2 stays click's code for usage errors
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here under standalone_mode=False
        # Typer >= 0.26 raises its own vendored click's exceptions (typer._click), which are
        # not click's classes: both kinds are recognised by what they can do.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise
    # Under standalone_mode=False click returns typer.Exit's code instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


__all__ = ["app", "console", "main"]
