"""``conceptlab lm dictionary``: train, name and audit an SAE on a language model's activations
(a thin layer over ``workflows.lm_dictionary``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from conceptlab.errors import ConceptlabError

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``dictionary`` command to the ``lm`` group."""

    @app.command()
    def dictionary(
        corpus: Annotated[str, typer.Option(
            "--corpus", help="fortunes[:CAT,...] | prompts:NAME | text:PATH | csv:PATH")] =
        "fortunes",
        out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-dictionary"),
        model: Annotated[str, typer.Option("--model")] = "smollm2",
        hook: Annotated[str, typer.Option("--hook")] = "blocks.6.hook_resid_post",
        method: Annotated[str, typer.Option("--method", help="topk | batchtopk | relu")] =
        "topk",
        k: Annotated[int, typer.Option("--k", help="active features per token")] = 32,
        width: Annotated[int, typer.Option("--width", help="number of features")] = 2304,
        l1: Annotated[float, typer.Option("--l1", help="relu only")] = 1.0,
        tokens: Annotated[int, typer.Option("--tokens", help="training token budget")] =
        100_000,
        context: Annotated[int, typer.Option("--context")] = 64,
        seed: Annotated[int, typer.Option("--seed")] = 0,
    ) -> None:
        """Sparse autoencoder on streamed activations: trained, named, audited, saved in
        SAELens' format beside a random-direction baseline."""
        from conceptlab.workflows.lm_dictionary import run_lm_dictionary

        try:
            m = run_lm_dictionary(corpus, out, model=model, hook=hook, method=method, k=k,
                                  width=width, l1=l1, tokens=tokens, context=context,
                                  seed=seed)
        except (ConceptlabError, ValueError, RuntimeError, OSError) as err:
            console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
            if os.environ.get("CONCEPTLAB_DEBUG"):
                raise
            raise typer.Exit(code=2) from None
        for name, r in m["results"].items():
            a = r["naming_audit"]
            console.print(f"{name}: FVE {r['fve']:.3f}  L0 {r['l0']:.1f}  dead "
                          f"{r['dead_rate']:.3f}  dense {r['dense_rate']:.3f}  CE +"
                          f"{r['ce_increase']:.3f}  named {a.get('n_named', 0)}  AUROC "
                          f"{a.get('auroc_mean', float('nan')):.3f} (shuffled "
                          f"{a.get('shuffled_auroc_mean', float('nan')):.3f})")
        console.print(f"wrote {escape(str(out / 'metrics.json'))}", soft_wrap=True)
