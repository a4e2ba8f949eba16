"""``conceptlab align``: the command-line face of ``conceptlab.workflows.align.run_align``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conceptlab.workflows.align import METHODS, AlignConfig, run_align

console = Console(stderr=True)


def align(
    data: Annotated[str, typer.Option(
        "--data", help="image data with captions: idsprites | captions:FILE.csv | folder:PATH "
        "| ... (any image data spec)")] = "idsprites",
    captions: Annotated[str, typer.Option(
        "--captions", help="auto (the data's own captions) | a CSV of image,caption rows")
    ] = "auto",
    image_encoder: Annotated[str, typer.Option(
        "--image-encoder", help="image encoder spec whose embedding the map reads")
    ] = "efficientnet",
    text_encoder: Annotated[str, typer.Option(
        "--text-encoder", help="text encoder spec whose space the map writes into")] = "minilm",
    out: Annotated[Path, typer.Option(
        "--out", help="folder for the map (use it as --encoder linear:OUT)")] = Path("runs/align"),
    method: Annotated[list[str] | None, typer.Option(
        "--method", help=f"fitting method(s) to try: {' | '.join(METHODS)} (default: both)")
    ] = None,
    contrastive_epochs: Annotated[int, typer.Option(
        "--contrastive-epochs", help="most epochs of each contrastive fit (best kept)")] = 60,
    n_train: Annotated[int | None, typer.Option("--n-train")] = None,
    n_val: Annotated[int | None, typer.Option("--n-val")] = None,
    n_test: Annotated[int | None, typer.Option("--n-test")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache", help="activation cache folder")
                     ] = None,
    data_option: Annotated[list[str] | None, typer.Option(
        "--data-option", "-D", help="dataset option KEY=VALUE (e.g. n_train=4000)")] = None,
    image_option: Annotated[list[str] | None, typer.Option(
        "--image-option", help="image encoder option KEY=VALUE (e.g. image_size=160)")] = None,
    text_option: Annotated[list[str] | None, typer.Option(
        "--text-option", help="text encoder option KEY=VALUE")] = None,
) -> None:
    """Fit a linear map image encoder -> text space on captions (LiMBeR); save linear:OUT."""
    from conceptlab.cli import _fail, _parse_options

    try:
        cfg = AlignConfig(data=data, captions=captions, image_encoder=image_encoder,
                          text_encoder=text_encoder, methods=tuple(method or METHODS),
                          n_train=n_train, n_val=n_val, n_test=n_test, seed=seed,
                          cache_dir=str(cache) if cache else None,
                          data_options=_parse_options(data_option),
                          image_options=_parse_options(image_option),
                          text_options=_parse_options(text_option),
                          contrastive_epochs=contrastive_epochs)
        metrics = run_align(cfg, out)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        _fail(err)
    table = Table(title="held-out image -> caption retrieval")
    for col in ("method", "val R@5", "test R@1", "test R@5", "zero-shot"):
        table.add_column(col, justify="left" if col == "method" else "right")
    chosen = metrics["chosen"]["method"]
    for name, row in metrics["test"].items():
        val = max(c["val"]["R@5"] for c in metrics["candidates"] if c["method"] == name)
        zs = row.get("zero_shot_accuracy")
        table.add_row(name + (" (chosen)" if name == chosen else ""), f"{val:.3f}",
                      f"{row.get('R@1', float('nan')):.3f}", f"{row.get('R@5', float('nan')):.3f}",
                      "-" if zs is None else f"{zs:.3f}")
    Console().print(table)
    console.print(f"encoder: {escape(metrics['encoder_spec'])}", soft_wrap=True)
