"""``conceptlab lancet``: parse, call ``workflows.lancet.run_lancet``, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def lancet(
    data: Annotated[str, typer.Option("--data", help="data spec (idsprites, ...)")
                    ] = "idsprites",
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="encoder spec whose text side reads the dictionary (linear:DIR)")
    ] = None,
    dictionary: Annotated[str, typer.Option(
        "--dictionary", help="auto (idsprites) | a file of [group/concept] + stimulus lines")
    ] = "auto",
    lam: Annotated[float | None, typer.Option(
        "--lam", help="sparsity; default: chosen on validation presence AUROC")] = None,
    edit_group: Annotated[list[str] | None, typer.Option(
        "--edit-group", help="dictionary group whose concepts are swapped (default colour, "
        "shape)")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/lancet"),
    n_train: Annotated[int | None, typer.Option("--n-train")] = None,
    n_test: Annotated[int | None, typer.Option("--n-test")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache")] = None,
    data_option: Annotated[list[str] | None, typer.Option(
        "--data-option", "-D", help="dataset option KEY=VALUE")] = None,
) -> None:
    """Concept Lancet: sparse concept decomposition, presence, and transplant edits."""
    from conceptlab.cli import _call, _config
    from conceptlab.workflows.lancet import run_lancet

    cfg = _call(lambda: _config(data, encoder, n_train, None, n_test, seed, cache, None,
                                data_option))
    groups = tuple(edit_group or ("colour", "shape"))
    m = _call(lambda: run_lancet(cfg, out, dictionary=dictionary, lam=lam, edit_groups=groups))
    nan = float("nan")
    console.print(f"lam {m['lam']:g}; presence AUROC {m.get('presence_auroc_mean', nan):.3f} "
                  f"(cosine {m.get('cosine_auroc_mean', nan):.3f})", soft_wrap=True)
    if "edits" in m:
        table = Table(title="replace edits on test inputs")
        for col in ("edit", "success", "consistency", "both"):
            table.add_column(col, justify="left" if col == "edit" else "right")
        for name, row in m["edits"]["rows"].items():
            table.add_row(name, f"{row['success']:.3f}", f"{row['consistency']:.3f}",
                          f"{row['both']:.3f}")
        Console().print(table)
    console.print(f"wrote {out / 'metrics.json'}", soft_wrap=True)
