"""``tcav``: concept activation vectors against random counter-examples, with statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    DATA_HELP,
    JsonOpt,
    SeedOpt,
    answer,
    call,
    encoder_specs,
    print_table,
)


def tcav(
    concepts_dir: Annotated[Path, typer.Option(
        "--concepts-dir", help="one sub-folder of images or one .txt file (a text per line) "
        "per concept")],
    random_dir: Annotated[Path, typer.Option(
        "--random-dir", help="the random pool: a folder of images or a .txt file / folder of "
        ".txt files; random counter-example sets are drawn from it")],
    class_name: Annotated[str, typer.Option("--class", help="the class of --data whose inputs "
                                            "are tested")],
    data: Annotated[str, typer.Option("--data", help="the class inputs' " + DATA_HELP)]
    = "fashion-mnist",
    encoder: Annotated[str, typer.Option(
        "--encoder", help="an image encoder spec whose network is tapped ("
        + encoder_specs() + ") | lm:SPEC (e.g. lm:smollm2)")] = "efficientnet",
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="hook point, repeatable (images: features, blocks.N; LM: "
        "blocks.N.hook_resid_post)")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="the model output tested (default: the class name; LM: a token)")]
    = None,
    fast: Annotated[bool, typer.Option("--fast", help="FastCAV (closed form) instead of the "
                                       "reference SGD linear SVM")] = False,
    n_random: Annotated[int, typer.Option("--n-random", min=2, help="random runs (>= 10)")
                        ] = 10,
    set_size: Annotated[int | None, typer.Option(
        "--set-size", min=2, help="random set size (default: the smallest concept set)")] = None,
    n_class: Annotated[int, typer.Option("--n-class", min=1, help="class inputs tested")] = 50,
    image_size: Annotated[int, typer.Option("--image-size", min=8)] = 224,
    reduce: Annotated[str | None, typer.Option(
        "--reduce", help="flatten (the paper, images) | mean | last (LM default)")] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0,
                                         help="family-wise error level")] = 0.05,
    seed: SeedOpt = 0,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/tcav"),
    as_json: JsonOpt = False,
) -> None:
    """TCAV: concept vs random CAVs at a layer, scores, two-sided t-tests, Holm correction."""
    from conceptlab.workflows.tcav import run_tcav

    metrics = call(lambda: run_tcav(
        data, out, concepts_dir=concepts_dir, random_dir=random_dir, class_name=class_name,
        encoder=encoder, layers=layer, target=target, fast=fast, n_random=n_random,
        set_size=set_size, n_class=n_class, image_size=image_size, reduce=reduce,
        alpha=alpha, seed=seed))
    answer(metrics, as_json, lambda: print_table(
        f"TCAV: {metrics['class']} -> {metrics['target']} ({metrics['cav_method']} CAVs)",
        ["layer", "concept", "score", "random", "p (Holm)", "significant"],
        [[r["layer"], r["concept"], f"{r['mean']:.2f} ± {r['std']:.2f}",
          f"{r['random_mean']:.2f} ± {r['random_std']:.2f}", f"{r['p_holm']:.2g}",
          bool(r["significant"])] for r in metrics["rows"]]), out)


def register(app: typer.Typer) -> None:
    """Add ``tcav``."""
    app.command()(tcav)
