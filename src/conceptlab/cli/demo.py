"""``demo``: the main job on the embedded default (real packaged model and data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from conceptlab.cli.common import (
    CacheOpt,
    JsonOpt,
    OutOpt,
    SeedOpt,
    answer,
    cache_dir,
    call,
    console,
    print_table,
    stdout,
)
from conceptlab.workflows import demo as demo_mod


def _fmnist_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for r in metrics["rows"]:
        nec_txt = "-" if "nec_requested" not in r else (
            "dense" if r["nec_requested"] is None else f"{r['nec_requested']:g}")
        f = r.get("faithfulness", {})
        gap = f.get("random_bank_gap")
        name = r["method"] if r.get("is_cbm", True) else f"{r['method']} [not a CBM]"
        verdict = "-" if "trusted" not in f else ("trusted" if f["trusted"] else "NOT trusted")
        rows.append([name, nec_txt, r["accuracy"], f.get("unit_fidelity_median"),
                     None if gap is None else f"{gap:+.3f}", verdict])
    return rows


def _shapes_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    return [[r["method"], r["accuracy"], r["faithfulness"]["unit_fidelity_median"],
             r["faithfulness"].get("concept_auroc_mean"),
             "trusted" if r["faithfulness"].get("trusted") else "NOT trusted"]
            for r in metrics.get("idsprites_rows", [])]


def demo(out: OutOpt = Path("runs/demo"),
         n_train: Annotated[int, typer.Option("--n-train", min=1)] = demo_mod.DEMO_N_TRAIN,
         n_val: Annotated[int, typer.Option("--n-val", min=1)] = demo_mod.DEMO_N_VAL,
         n_test: Annotated[int, typer.Option("--n-test", min=1)] = demo_mod.DEMO_N_TEST,
         image_size: Annotated[int, typer.Option("--image-size", min=8)
                               ] = demo_mod.DEMO_IMAGE_SIZE,
         seed: SeedOpt = 0, cache: CacheOpt = None,
         sprites: Annotated[bool, typer.Option(
             "--sprites/--no-sprites", help="also fit a CBM on captioned shapes through a "
             "caption-trained joint space")] = True,
         as_json: JsonOpt = False) -> None:
    """The main job on the embedded default: Sparse-CBM vs baselines on Fashion-MNIST, and a
    CBM whose concepts mean their names on captioned shapes."""
    metrics = call(lambda: demo_mod.run_demo(out, n_train=n_train, n_val=n_val, n_test=n_test,
                                             image_size=image_size, seed=seed,
                                             cache_dir=cache_dir(cache), with_sprites=sprites))

    def tables() -> None:
        print_table("Fashion-MNIST through the offline ConSE space",
                    ["method", "nec", "accuracy", "unit fidelity", "random-bank gap", "audit"],
                    _fmnist_rows(metrics))
        if metrics.get("idsprites_rows"):
            print_table("Captioned shapes through a caption-trained linear map (NEC=5)",
                        ["model", "accuracy", "unit fidelity", "concept AUROC", "audit"],
                        _shapes_rows(metrics))
        for sentence in metrics.get("story", []):
            stdout.print(escape(sentence), soft_wrap=True)

    answer(metrics, as_json, tables)
    console.print(f"report: {escape(str(Path(out) / 'report.html'))}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command()(demo)
