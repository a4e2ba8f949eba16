"""The seed systems: ``match`` (explicit semantic matching), ``lancet`` (Concept Lancet) and
``cab`` (concept association bias)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    DATA_HELP,
    ENCODER_HELP,
    CacheOpt,
    DataSetOpt,
    EncoderSetOpt,
    JsonOpt,
    NTestOpt,
    NTrainOpt,
    NValOpt,
    SeedOpt,
    answer,
    cache_dir,
    call,
    console,
    parse_options,
    print_table,
    run_config,
    warn,
)


def match(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)] = "robots-text",
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="(minilm for texts, linear:DIR for captioned images) "
        + ENCODER_HELP)
    ] = None,
    concepts: Annotated[str, typer.Option(
        "--concepts", help="auto | a vocabulary file | a built-in name")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder for the matcher and metrics")
                   ] = Path("runs/match"),
    n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
    seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: EncoderSetOpt = None,
    data_option: DataSetOpt = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="matcher setting KEY=VALUE (epochs, lr, ground, temperature, ...)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval in a space of named concepts (after SESA), beside cosine and a dense map."""
    from conceptlab.workflows.match import run_match

    cfg = call(lambda: run_config(data, encoder, n_train, n_val, n_test, seed, cache,
                                  encoder_option, data_option))
    settings = call(lambda: parse_options(set_, "--set"))
    metrics = call(lambda: run_match(cfg, out, concepts=concepts, settings=settings))
    answer(metrics, as_json, lambda: print_table(
        "held-out same-class retrieval",
        ["matcher", "P@1", "R@10", "nDCG@10", "mAP", "unit fidelity"],
        [[name, row["P@1"], row["R@10"], row["nDCG@10"], row["mAP"],
          row.get("audit", {}).get("unit_fidelity_median")]
         for name, row in metrics["rows"].items()]), out)
    warn(metrics.get("warnings", []))


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
        "--lam", min=0.0, help="sparsity; default: chosen on validation presence AUROC")
    ] = None,
    edit_group: Annotated[list[str] | None, typer.Option(
        "--edit-group", help="dictionary group whose concepts are swapped (default colour, "
        "shape)")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/lancet"),
    n_train: NTrainOpt = None, n_test: NTestOpt = None, seed: SeedOpt = 0,
    cache: CacheOpt = None, data_option: DataSetOpt = None, as_json: JsonOpt = False,
) -> None:
    """Concept Lancet: sparse concept decomposition, presence, and transplant edits."""
    from conceptlab.workflows.lancet import run_lancet

    cfg = call(lambda: run_config(data, encoder, n_train, None, n_test, seed, cache, None,
                                  data_option))
    groups = tuple(edit_group or ("colour", "shape"))
    m = call(lambda: run_lancet(cfg, out, dictionary=dictionary, lam=lam, edit_groups=groups))

    def table() -> None:
        nan = float("nan")
        console.print(f"lam {m['lam']:g}; presence AUROC {m.get('presence_auroc_mean', nan):.3f}"
                      f" (cosine {m.get('cosine_auroc_mean', nan):.3f})", soft_wrap=True)
        if "edits" in m:
            print_table("replace edits on test inputs", ["edit", "success", "consistency",
                                                         "both"],
                        [[name, row["success"], row["consistency"], row["both"]]
                         for name, row in m["edits"]["rows"].items()])

    answer(m, as_json, table, out)


def cab(
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="measure this image-text space only (linear:DIR, hf:NAME); default: "
        "fit one caption map per association level")] = None,
    association: Annotated[list[float] | None, typer.Option(
        "--association", help="share of training circles that are red "
        "(repeat; default 0.5, 0.8, 0.95)")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/cab"),
    n_train: Annotated[int, typer.Option("--n-train", min=1)] = 1500,
    n_test: Annotated[int, typer.Option("--n-test", min=1)] = 600,
    seed: SeedOpt = 0, cache: CacheOpt = None, as_json: JsonOpt = False,
) -> None:
    """Concept association bias: do two-object images get the other object's attribute?"""
    from conceptlab.workflows.cab import DEFAULT_LEVELS, run_cab

    levels = tuple(association or DEFAULT_LEVELS)
    m = call(lambda: run_cab(out, encoder=encoder, levels=levels, seed=seed, n_train=n_train,
                             n_test=n_test, cache_dir=cache_dir(cache)))
    answer(m, as_json, lambda: print_table(
        "concept association bias on the twoshapes probe",
        ["space", "single acc", "other's colour", "CAB", "fill (red)"],
        [[r.get("encoder") or f"map, association {r['association']:g}", r["single_accuracy"],
          r["other_rate"], f"{r['cab']:+.3f}", r.get("fill_rate")] for r in m["rows"]]), out)


def register(app: typer.Typer) -> None:
    """Add ``match``, ``lancet`` and ``cab``."""
    app.command()(match)
    app.command()(lancet)
    app.command()(cab)
