"""``report`` and ``serve``: the self-contained HTML page and the explorer of saved runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conceptlab.cli.common import call, console, fail
from conceptlab.errors import DependencyError, OptionError


def report(dirs: Annotated[list[Path], typer.Argument(
               help="run folder(s) written by `fit` or `demo` (several: a comparison page)")],
           out: Annotated[Path | None, typer.Option(
               "--out", help="HTML file (default DIR/report.html for one folder)")] = None
           ) -> None:
    """Write one self-contained HTML report (images embedded) from saved run folders."""
    from conceptlab.workflows.report import build_report

    path = call(lambda: build_report(dirs, out))
    console.print(f"report: {escape(str(path))}", soft_wrap=True)


def _load_server() -> object:
    try:
        from conceptlab.workflows.serve import serve as run_server
    except ImportError as err:
        raise DependencyError(f"the explorer needs the 'serve' extra (pip install "
                              f"'conceptlab[serve]'): {err}") from err
    return run_server


def serve(run_dir: Annotated[Path, typer.Argument(help="run folder written by `fit` or `demo`")],
          port: Annotated[int, typer.Option("--port", help="TCP port (1..65535)")] = 8765,
          host: Annotated[str, typer.Option(
              "--host", help="interface to bind (default: this machine only)")] = "127.0.0.1"
          ) -> None:
    """Explore a saved model in the browser: explain, intervene, compare, find neighbours."""
    run_server = call(_load_server)
    if not 0 < port < 65536:
        fail(OptionError(f"--port must be in 1..65535, got {port}"))
    call(lambda: run_server(run_dir, host=host, port=port))  # type: ignore[operator]


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``serve``."""
    app.command()(report)
    app.command()(serve)
