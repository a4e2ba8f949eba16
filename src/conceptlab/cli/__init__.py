"""The command line: one module per command group, each with ``register(app)``.

Every command has a Python twin (``conceptlab.workflows.*``); the modules here only parse
options, call it through :func:`conceptlab.cli.common.call` (conceptlab's own errors become one
``error:`` line and exit code 2) and print the answer (a table, or JSON with ``--json``).
``python -m conceptlab`` and the ``conceptlab`` script run :data:`app`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from conceptlab.cli import (
    align,
    cbm,
    demo,
    discover,
    embeddings,
    lm,
    report,
    seed_systems,
    shift,
    tcav,
)
from conceptlab.cli.common import call

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Concept-based interpretability: concept bottleneck models, concept "
                  "discovery and concepts in language models.")


def _version(value: bool) -> None:
    if value:
        from conceptlab.utils.version import package_version

        typer.echo(f"conceptlab {package_version()}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         version: Annotated[bool, typer.Option(
             "--version", callback=_version, is_eager=True, help="print the version and exit")]
         = False,
         device: Annotated[str | None, typer.Option(
             "--device", help="auto | cpu | cuda | cuda:N for every component (default: "
             "$CONCEPTLAB_DEVICE, else auto: the first GPU if torch sees one)")] = None,
         dtype: Annotated[str | None, typer.Option(
             "--dtype", help="auto | float32 | bfloat16 | float16 (default auto: float32, "
             "bfloat16 for language models on a GPU)")] = None) -> None:
    """Concept-based interpretability: concept bottleneck models, concept discovery and
    concepts in language models."""
    from conceptlab.device import using

    # one device rule for the whole command (conceptlab.device); a missing GPU or a misspelt
    # name is one error line here, before the command starts any work
    call(lambda: ctx.with_resource(using(device, dtype)))


#: the command groups, in the order ``conceptlab --help`` lists them
GROUPS = (demo, embeddings, cbm, report, align, discover, tcav, seed_systems, shift, lm)
for _group in GROUPS:
    _group.register(app)


#: options of the root callback that a user may also write after the command
GLOBAL_OPTIONS = ("--device", "--dtype")


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with ``--device X`` / ``--dtype X`` (or ``--device=X``) moved in front of the
    command, so ``conceptlab fit --device cuda ...`` means ``conceptlab --device cuda fit ...``:
    every command takes them, wherever they are written."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front += argv[i:i + 2]
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main() -> None:  # pragma: no cover - console entry (`python -m conceptlab`)
    app(hoist_global_options(sys.argv[1:]), prog_name="conceptlab")


__all__ = ["GLOBAL_OPTIONS", "GROUPS", "app", "hoist_global_options", "main"]
