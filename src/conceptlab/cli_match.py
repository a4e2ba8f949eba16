"""``conceptlab match``: parse, call ``workflows.match.run_match``, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def match(
    data: Annotated[str, typer.Option("--data", help="data spec (robots-text, idsprites, ...)")
                    ] = "robots-text",
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="encoder spec (minilm for texts, linear:DIR for captioned images)")
    ] = None,
    concepts: Annotated[str, typer.Option(
        "--concepts", help="auto | a vocabulary file | a built-in name")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder for the matcher and metrics")
                   ] = Path("runs/match"),
    n_train: Annotated[int | None, typer.Option("--n-train")] = None,
    n_val: Annotated[int | None, typer.Option("--n-val")] = None,
    n_test: Annotated[int | None, typer.Option("--n-test")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache", help="activation cache folder")
                     ] = None,
    encoder_option: Annotated[list[str] | None, typer.Option(
        "--encoder-option", "-E", help="encoder option KEY=VALUE")] = None,
    data_option: Annotated[list[str] | None, typer.Option(
        "--data-option", "-D", help="dataset option KEY=VALUE")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="matcher setting KEY=VALUE (epochs, lr, ground, temperature, ...)")
    ] = None,
) -> None:
    """Retrieval in a space of named concepts (after SESA), beside cosine and a dense map."""
    from conceptlab.cli import _call, _config, _parse_options, _warn
    from conceptlab.workflows.match import run_match

    cfg = _call(lambda: _config(data, encoder, n_train, n_val, n_test, seed, cache,
                                encoder_option, data_option))
    settings = _call(lambda: _parse_options(set_))
    metrics = _call(lambda: run_match(cfg, out, concepts=concepts, settings=settings))
    table = Table(title="held-out same-class retrieval")
    for col in ("matcher", "P@1", "R@10", "nDCG@10", "mAP", "unit fidelity"):
        table.add_column(col, justify="left" if col == "matcher" else "right")
    for name, row in metrics["rows"].items():
        fid = row.get("audit", {}).get("unit_fidelity_median")
        table.add_row(name, f"{row['P@1']:.3f}", f"{row['R@10']:.3f}", f"{row['nDCG@10']:.3f}",
                      f"{row['mAP']:.3f}", "-" if fid is None else f"{fid:.2f}")
    Console().print(table)
    _warn(metrics.get("warnings", []))
    console.print(f"wrote {out / 'metrics.json'}", soft_wrap=True)
