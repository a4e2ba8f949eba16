"""``conceptlab report`` and ``conceptlab serve``: thin commands over ``workflows.report`` and
``workflows.serve`` (registered in ``cli.py`` by ``register``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def _fail(err: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
    if os.environ.get("CONCEPTLAB_DEBUG"):
        raise err
    raise typer.Exit(code=2)


def report(dirs: Annotated[list[Path], typer.Argument(
               help="run folder(s) written by `fit` or `demo` (several: a comparison page)")],
           out: Annotated[Path | None, typer.Option(
               "--out", help="HTML file (default DIR/report.html for one folder)")] = None
           ) -> None:
    """Write one self-contained HTML report (images embedded) from saved run folders."""
    from conceptlab.workflows.report import build_report

    try:
        path = build_report(dirs, out)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        _fail(err)
    console.print(f"report: {escape(str(path))}", soft_wrap=True)


def serve(run_dir: Annotated[Path, typer.Argument(help="run folder written by `fit` or `demo`")],
          port: Annotated[int, typer.Option("--port", help="TCP port")] = 8765,
          host: Annotated[str, typer.Option(
              "--host", help="interface to bind (default: this machine only)")] = "127.0.0.1"
          ) -> None:
    """Explore a saved model in the browser: explain, intervene, compare, find neighbours."""
    try:
        from conceptlab.workflows.serve import serve as run_server
    except ImportError as err:
        _fail(RuntimeError(f"the explorer needs the 'serve' extra (pip install "
                           f"'conceptlab[serve]'): {err}"))
    if not 0 < port < 65536:
        _fail(ValueError(f"--port must be in 1..65535, got {port}"))
    try:
        run_server(run_dir, host=host, port=port)
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as err:
        _fail(err)


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``serve`` to the main command line."""
    app.command()(report)
    app.command()(serve)
