"""``shift``: concept shift vectors between a model's states before and after fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import JsonOpt, SeedOpt, answer, call, print_table
from conceptlab.workflows import shift as wf


def shift(
    base: Annotated[Path, typer.Argument(help="hidden states before fine-tuning (.npy or "
                                         ".safetensors, inputs x dims)")],
    tuned: Annotated[Path, typer.Argument(help="the same inputs' states after fine-tuning")],
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("runs/shift"),
    k: Annotated[int, typer.Option("--k", min=1, help="base concepts")] = 10,
    method: Annotated[str, typer.Option("--method", help="how base concepts are found "
                                        "(kmeans | nmf | pca ...)")] = "kmeans",
    alpha: Annotated[float, typer.Option("--alpha", help="scale of the shift added to each "
                                         "base concept")] = 1.0,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Each base concept's shift vector and how well base + shift recovers the fine-tuned
    concepts (Concept Shift Vectors)."""
    m = call(lambda: wf.run_shift(base, tuned, out, k=k, method=method, seed=seed,
                                  alpha=alpha))
    answer(m, as_json, lambda: print_table(
        f"{m['n_concepts']} concepts over {m['n_inputs']} inputs (mean state change "
        f"{m['mean_state_change']:.3g})",
        ["concept", "inputs", "shift norm", "consistency"],
        [[i, c, n, s] for i, (c, n, s) in enumerate(zip(
            m["counts"], m["shift_norms"], m["consistency"], strict=True))]), out)


def register(app: typer.Typer) -> None:
    """Add ``shift``."""
    app.command()(shift)
