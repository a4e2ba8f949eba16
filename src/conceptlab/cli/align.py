"""``align``: fit a linear map from an image encoder into a text space on captions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    DATA_HELP,
    CacheOpt,
    DataSetOpt,
    JsonOpt,
    NTestOpt,
    NTrainOpt,
    NValOpt,
    SeedOpt,
    answer,
    cache_dir,
    call,
    console,
    encoder_specs,
    parse_options,
    print_table,
)
from conceptlab.workflows.align import METHODS, AlignConfig, run_align


def align(
    data: Annotated[str, typer.Option(
        "--data", help="image data with captions (captions:FILE.csv for a captions table); "
        + DATA_HELP)] = "idsprites",
    captions: Annotated[str, typer.Option(
        "--captions", help="auto (the data's own captions) | a CSV of image,caption rows")
    ] = "auto",
    image_encoder: Annotated[str, typer.Option(
        "--image-encoder", help="image encoder spec whose embedding the map reads: "
        + encoder_specs())
    ] = "efficientnet",
    text_encoder: Annotated[str, typer.Option(
        "--text-encoder", help="text encoder spec whose space the map writes into: "
        + encoder_specs())] = "minilm",
    out: Annotated[Path, typer.Option(
        "--out", help="folder for the map (use it as --encoder linear:OUT)")] = Path("runs/align"),
    method: Annotated[list[str] | None, typer.Option(
        "--method", help=f"fitting method(s) to try: {' | '.join(METHODS)} (default: both)")
    ] = None,
    contrastive_epochs: Annotated[int, typer.Option(
        "--contrastive-epochs", min=1, help="most epochs of each contrastive fit (best kept)")
    ] = 60,
    n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
    seed: SeedOpt = 0, cache: CacheOpt = None, data_option: DataSetOpt = None,
    image_option: Annotated[list[str] | None, typer.Option(
        "--image-option", help="image encoder option KEY=VALUE (e.g. image_size=160)")] = None,
    text_option: Annotated[list[str] | None, typer.Option(
        "--text-option", help="text encoder option KEY=VALUE")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit a linear map image encoder -> text space on captions (LiMBeR); save linear:OUT."""
    cfg = call(lambda: AlignConfig(
        data=data, captions=captions, image_encoder=image_encoder, text_encoder=text_encoder,
        methods=tuple(method or METHODS), n_train=n_train, n_val=n_val, n_test=n_test,
        seed=seed, cache_dir=cache_dir(cache),
        data_options=parse_options(data_option, "--data-option"),
        image_options=parse_options(image_option, "--image-option"),
        text_options=parse_options(text_option, "--text-option"),
        contrastive_epochs=contrastive_epochs))
    metrics = call(lambda: run_align(cfg, out))
    chosen = metrics["chosen"]["method"]

    def table() -> None:
        rows = []
        for name, row in metrics["test"].items():
            val = max(c["val"]["R@5"] for c in metrics["candidates"] if c["method"] == name)
            rows.append([name + (" (chosen)" if name == chosen else ""), val, row.get("R@1"),
                         row.get("R@5"), row.get("zero_shot_accuracy")])
        print_table("held-out image -> caption retrieval",
                    ["method", "val R@5", "test R@1", "test R@5", "zero-shot"], rows)

    answer(metrics, as_json, table, out)
    console.print(f"encoder: {metrics['encoder_spec']}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``align``."""
    app.command()(align)
