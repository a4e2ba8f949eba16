"""What every command shares: the consoles, the one error handler, the one ``KEY=VALUE``
parser, the option types (their help lists generated from the registries) and the printers.

Conventions every command follows (a test checks them):

- library code raises :class:`conceptlab.errors.ConceptlabError` for anything a user can get
  wrong; :func:`call` turns exactly those into one ``error:`` line and exit code 2 (any other
  exception is a bug and stays a traceback; ``CONCEPTLAB_DEBUG=1`` re-raises user errors too);
- answers go to stdout, as a table on a terminal or as JSON with ``--json``; status lines
  (``wrote ...``, warnings, errors) go to stderr;
- the same option names mean the same thing everywhere (``--data``, ``--encoder``, ``--out``,
  ``--seed``, ``--cache``, ``-E``/``--encoder-option``, ``-D``/``--data-option``, ``--json``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conceptlab.errors import ConceptlabError, OptionError

#: status lines, warnings and errors
console = Console(stderr=True)
#: answers (tables); JSON answers go through :func:`print_json`
stdout = Console()

T = TypeVar("T")


def fail(err: Exception | str) -> NoReturn:
    """Print one ``error:`` line for a user error and exit with code 2."""
    text = str(err)
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    # escape: a message holds paths and names, never markup; soft_wrap: no breaks in paths
    console.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True)
    if os.environ.get("CONCEPTLAB_DEBUG") and isinstance(err, Exception):
        raise err
    raise typer.Exit(code=2)


def call(job: Callable[[], T]) -> T:
    """Run one command's job; a :class:`ConceptlabError` (conceptlab refusing input or state) or
    an :class:`OSError` (the machine refusing: disk full, permission, missing device) becomes one
    line and exit code 2. Anything else is a bug and keeps its traceback."""
    try:
        return job()
    except ConceptlabError as err:
        fail(err)
    except OSError as err:
        fail(err)


def warn(warnings: Iterable[str]) -> None:
    """One ``warning:`` line per message, on stderr."""
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(str(w))}", soft_wrap=True)


def wrote(path: Path | str) -> None:
    """The status line naming a file a command wrote."""
    console.print(f"wrote {escape(str(path))}", soft_wrap=True)


def parse_options(pairs: Sequence[str] | None, option: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` pairs of a repeatable option as a dict; each value is read as JSON when it
    parses (numbers, booleans, lists) and kept as a string otherwise. Non-finite numbers are
    refused (no setting of conceptlab means anything at infinity)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"{option}: expected KEY=VALUE, got {pair!r}")
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            parsed = value
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise OptionError(f"{option} {key}: {value!r} is not a finite number")
        out[key.strip()] = parsed
    return out


def parse_ints(text: str | None, option: str) -> list[int] | None:
    """A comma-separated list of integers (None for an empty text)."""
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"{option}: expected comma-separated integers, got {text!r}") from None


def parse_floats(text: str, option: str) -> list[float]:
    """A comma-separated list of finite numbers."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise OptionError(f"{option}: {text!r} holds a non-finite number")
    return values


def print_json(obj: Any) -> None:
    """An answer as indented JSON on stdout."""
    typer.echo(json.dumps(obj, indent=2, default=str))


def cell(value: Any) -> str:
    """One table cell: floats to 3 decimals, None as '-', everything escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return escape(str(value))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """An answer as a table on stdout (first column left-aligned, the rest right-aligned)."""
    table = Table(title=escape(title) if title else None, show_header=True, header_style="bold")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[cell(v) for v in r])
    stdout.print(table)


def print_metrics(metrics: dict[str, Any], keys: Sequence[str], title: str | None = None) -> None:
    """The chosen fields of a metrics dict as a two-column table."""
    print_table(title, ["metric", "value"],
                [[k, metrics[k]] for k in keys if k in metrics])


def answer(result: Any, as_json: bool, table: Callable[[], None],
           out: Path | None = None) -> None:
    """Print a command's answer: its JSON with ``--json``, else its table; then the file."""
    if as_json:
        print_json(result)
    else:
        table()
    if out is not None:
        wrote(out / "metrics.json")


# ------------------------------------------------------------------------------------------------
# option types shared by every command (help lists come from the registries)
# ------------------------------------------------------------------------------------------------

def names_help(names: Iterable[str]) -> str:
    """``a | b | c``: a help list generated from a registry's names (never typed by hand)."""
    return " | ".join(names)


def _dataset_help() -> str:
    from conceptlab.data.base import dataset_options, known_datasets

    parts = []
    for name in known_datasets():
        arg = dataset_options(name)[1]
        parts.append(f"{name}:PATH" if arg else name)
    return "data spec: " + names_help(parts)


def _template_sets() -> list[str]:
    from conceptlab.baselines.zeroshot import TEMPLATE_SETS

    return TEMPLATE_SETS.names()


def encoder_specs() -> str:
    """Every registered encoder spec as help texts show it (``conse | hf:ARG | ...``)."""
    from conceptlab.encoders.base import encoder_options, known_encoders

    parts = []
    for name in known_encoders():
        arg = encoder_options(name)[1]
        parts.append(f"{name}:ARG" if arg else name)
    return names_help(parts)


DATA_HELP = _dataset_help()
ENCODER_HELP = ("encoder spec (default by modality: conse for images, minilm for texts): "
                + encoder_specs())
#: ``--templates``: the registered class-name template sets
TEMPLATES_HELP = names_help(_template_sets())

DataOpt = Annotated[str, typer.Option("--data", help=DATA_HELP)]
EncoderOpt = Annotated[str | None, typer.Option("--encoder", help=ENCODER_HELP)]
NTrainOpt = Annotated[int | None, typer.Option(
    "--n-train", min=1, help="train items (stratified subsample, recorded); default all")]
NValOpt = Annotated[int | None, typer.Option("--n-val", min=1,
                                             help="validation items (from train)")]
NTestOpt = Annotated[int | None, typer.Option(
    "--n-test", min=1, help="test items; default the full official test split")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="seed for splits and training")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache", help="activation cache folder (default $CONCEPTLAB_CACHE or ~/.cache/conceptlab)")]
EncoderSetOpt = Annotated[list[str] | None, typer.Option(
    "--encoder-option", "-E", help="encoder option KEY=VALUE (e.g. k=20, image_size=160)")]
DataSetOpt = Annotated[list[str] | None, typer.Option(
    "--data-option", "-D", help="dataset option KEY=VALUE (e.g. invert=true)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]
RunDirArg = Annotated[Path, typer.Argument(help="run folder written by `fit` (CBM, DN-CBM or "
                                                "CEM)")]


OutOpt = Annotated[Path, typer.Option("--out", help="run folder to write (replaced whole)")]


def cache_dir(cache: Path | None) -> str | None:
    """The ``--cache`` value as the string the workflows take."""
    return str(cache) if cache else None


def run_config(data: str, encoder: str | None, n_train: int | None, n_val: int | None,
               n_test: int | None, seed: int, cache: Path | None,
               encoder_options: list[str] | None, data_options: list[str] | None) -> Any:
    """The ``RunConfig`` of the data + encoder commands (options parsed, errors named)."""
    from conceptlab.workflows import RunConfig

    return RunConfig(data=data, encoder=encoder, n_train=n_train, n_val=n_val, n_test=n_test,
                     seed=seed, cache_dir=cache_dir(cache),
                     encoder_options=parse_options(encoder_options, "--encoder-option"),
                     data_options=parse_options(data_options, "--data-option"))
