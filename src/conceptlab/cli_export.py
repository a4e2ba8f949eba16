"""``conceptlab export``: a fitted run's activations, explanations or audit as a table (a thin
command over ``workflows.export``; registered in ``cli.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
T = TypeVar("T")


def _run(job: Callable[[], T]) -> T:
    """The job, or one ``error:`` line and exit code 2 for a user error (as ``cli``)."""
    from conceptlab.cli import USER_ERRORS

    try:
        return job()
    except USER_ERRORS as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        if os.environ.get("CONCEPTLAB_DEBUG"):
            raise
        raise typer.Exit(code=2) from None


def export(run_dir: Annotated[Path, typer.Argument(help="run folder written by `fit`")],
           what: Annotated[str, typer.Option(
               "--what", help="activations (per test item) | explanations | audit")
           ] = "activations",
           fmt: Annotated[str, typer.Option("--format", help="csv | parquet (needs pyarrow)")
                          ] = "csv",
           out: Annotated[Path, typer.Option("--out", help="file to write")] = Path("table.csv"),
           ) -> None:
    """Write a table a dataframe reads: per-item concept activations of the test split with
    labels and predictions, the saved explanations, or the faithfulness audit."""
    from conceptlab.workflows.export import check_request, export_run

    _run(lambda: check_request(what, fmt))
    path = _run(lambda: export_run(run_dir, what, fmt, out))  # type: ignore[arg-type]
    console.print(f"wrote {escape(str(path))}", soft_wrap=True)
