"""``shift``: concept shift vectors between a model's states before and after fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import JsonOpt, SeedOpt, answer, call, print_table
from conceptlab.report.shift_plots import changes_title
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
    threshold: Annotated[float, typer.Option("--threshold", min=-1.0, max=1.0,
                                             help="cosine with its matched fine-tuned concept "
                                             "below which a base concept counts as lost (and "
                                             "its partner as gained)")] = 0.5,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Each base concept's shift vector and how well base + shift recovers the fine-tuned
    concepts (Concept Shift Vectors)."""
    m = call(lambda: wf.run_shift(base, tuned, out, k=k, method=method, seed=seed,
                                  alpha=alpha, threshold=threshold))
    answer(m, as_json, lambda: print_table(
        f"{m['n_concepts']} concepts over {m['n_inputs']} inputs (mean state change "
        f"{m['mean_state_change']:.3g}); {changes_title(m['changes'])}",
        ["concept", "inputs", "shift norm", "consistency", "partner cosine", "shifted cosine",
         "status"],
        [[i, c, n, s, co, cs, st] for i, (c, n, s, co, cs, st) in enumerate(zip(
            m["counts"], m["shift_norms"], m["consistency"], m["changes"]["cosine_original"],
            m["changes"]["cosine_shifted"], m["changes"]["status"], strict=True))]), out)


def register(app: typer.Typer) -> None:
    """Add ``shift``."""
    app.command()(shift)
