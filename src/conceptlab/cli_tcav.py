"""The `tcav` command (thin: parses, calls ``conceptlab.workflows.tcav.run_tcav``, prints)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def tcav(
    concepts_dir: Annotated[Path, typer.Option(
        "--concepts-dir", help="one sub-folder of images or one .txt file (a text per line) "
        "per concept")],
    random_dir: Annotated[Path, typer.Option(
        "--random-dir", help="the random pool: a folder of images or a .txt file / folder of "
        ".txt files; random counter-example sets are drawn from it")],
    class_name: Annotated[str, typer.Option("--class", help="the class of --data whose inputs "
                                            "are tested")],
    data: Annotated[str, typer.Option("--data", help="data spec giving the class inputs")]
    = "fashion-mnist",
    encoder: Annotated[str, typer.Option(
        "--encoder", help="efficientnet | lm:SPEC (e.g. lm:smollm2)")] = "efficientnet",
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="hook point, repeatable (efficientnet: features, _blocks.N; LM: "
        "blocks.N.hook_resid_post)")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="the model output tested (default: the class name; LM: a token)")]
    = None,
    fast: Annotated[bool, typer.Option("--fast", help="FastCAV (closed form) instead of the "
                                       "reference SGD linear SVM")] = False,
    n_random: Annotated[int, typer.Option("--n-random", help="random runs (>= 10)")] = 10,
    set_size: Annotated[int | None, typer.Option(
        "--set-size", help="random set size (default: the smallest concept set)")] = None,
    n_class: Annotated[int, typer.Option("--n-class", help="class inputs tested")] = 50,
    image_size: Annotated[int, typer.Option("--image-size")] = 224,
    reduce: Annotated[str | None, typer.Option(
        "--reduce", help="flatten (the paper, images) | mean | last (LM default)")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="family-wise error level")] = 0.05,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/tcav"),
) -> None:
    """TCAV: concept vs random CAVs at a layer, scores, two-sided t-tests, Holm correction."""
    from conceptlab.cli import USER_ERRORS
    from conceptlab.workflows.tcav import run_tcav

    try:
        metrics = run_tcav(
            data, out, concepts_dir=concepts_dir, random_dir=random_dir, class_name=class_name,
            encoder=encoder, layers=layer, target=target, fast=fast, n_random=n_random,
            set_size=set_size, n_class=n_class, image_size=image_size, reduce=reduce,
            alpha=alpha, seed=seed)
    except USER_ERRORS as err:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        if os.environ.get("CONCEPTLAB_DEBUG"):
            raise
        raise typer.Exit(code=2) from err
    table = Table(title=escape(f"TCAV: {metrics['class']} -> {metrics['target']} "
                               f"({metrics['cav_method']} CAVs)"))
    for col in ("layer", "concept", "score", "random", "p (Holm)", "significant"):
        table.add_column(col)
    for r in metrics["rows"]:
        table.add_row(escape(r["layer"]), escape(r["concept"]),
                      f"{r['mean']:.2f} ± {r['std']:.2f}",
                      f"{r['random_mean']:.2f} ± {r['random_std']:.2f}", f"{r['p_holm']:.2g}",
                      "yes" if r["significant"] else "no")
    Console().print(table)
    Console(stderr=True).print(f"wrote {escape(str(out / 'metrics.json'))}", soft_wrap=True)
