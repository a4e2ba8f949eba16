"""``conceptlab cab``: parse, call ``workflows.cab.run_cab``, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def cab(
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="measure this image-text space only (linear:DIR, hf:NAME); default: "
        "fit one caption map per association level")] = None,
    association: Annotated[list[float] | None, typer.Option(
        "--association", help="share of training circles that are red (repeat; default "
        "0.5, 0.8, 0.95)")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/cab"),
    n_train: Annotated[int, typer.Option("--n-train")] = 1500,
    n_test: Annotated[int, typer.Option("--n-test")] = 600,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache")] = None,
) -> None:
    """Concept association bias: do two-object images get the other object's attribute?"""
    from conceptlab.cli import _call
    from conceptlab.workflows.cab import DEFAULT_LEVELS, run_cab

    levels = tuple(association or DEFAULT_LEVELS)
    m = _call(lambda: run_cab(out, encoder=encoder, levels=levels, seed=seed, n_train=n_train,
                              n_test=n_test, cache_dir=str(cache) if cache else None))
    table = Table(title="concept association bias on the twoshapes probe")
    for col in ("space", "single acc", "other's colour", "CAB", "fill (red)"):
        table.add_column(col, justify="left" if col == "space" else "right")
    for r in m["rows"]:
        name = r.get("encoder") or f"map, association {r['association']:g}"
        table.add_row(name, f"{r['single_accuracy']:.3f}", f"{r['other_rate']:.3f}",
                      f"{r['cab']:+.3f}", f"{r.get('fill_rate', float('nan')):.3f}")
    Console().print(table)
    console.print(f"wrote {out / 'metrics.json'}", soft_wrap=True)
