"""Why the Gumbel layer trails l1 at NEC = 5: an ablation on validation, then 3 seeds on test.

Data: Fashion-MNIST through ConSE and idsprites through the caption-trained linear map (fitted
by ``conceptlab align`` on idsprites' captions, as bench_faithfulness does).

Protocol: the data split is fixed (seed 0, recorded); every ablation row is scored on
*validation only* (carved from train), at NEC = 5, model seed 0, one factor changed at a time
from conceptlab's ``gumbel`` (scores CBL, grounded, sparse fine-tuning as in
``workflows.variants.FINETUNE``): the tau schedule, the head's input (soft softmax(a / tau_min)
or straight-through one-hot, or one-hot at evaluation only), the loss form (contrastive weight
0 = cross-entropy only), the contrastive weight, and the learning rate; then one row combining
each factor's best change. The configuration chosen on validation (rule fixed before the runs:
the best validation accuracy among Gumbel rows with fewer active concepts per decision than l1)
is then compared on test with ``l1`` (ours) and the two Sparse-CBM references over seeds 0, 1,
2 (mean +- 95% t-interval; paired per-seed difference to l1).

A ceiling measured beside it: the head of a Gumbel CBL at a low temperature sees almost a
one-hot vector of the top unit, so it can do no better than the best class per top unit. The
"top-unit ceiling" is that rule's validation accuracy (majority class of each unit's argmax on
train, scored on validation), for the fitted model's units.

    .venv/bin/python benchmarks/bench_gumbel_ablation.py [--n-train 2000] [--n-val 500]
        [--n-test 1000] [--sprites-n-train 2000] [--sprites-n-test 1000]
        [--only fashion|idsprites] [--quick]

Writes benchmarks/results/bench_gumbel_ablation.json; docs/benchmarks.md's section is
generated from it by benchmarks/gumbel_ablation_table.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.errors import ComputeError
from conceptlab.utils.io import write_json_atomic
from conceptlab.workflows.cbm import fit_cbm
from conceptlab.workflows.concepts import ConceptSource, concept_source
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare
from conceptlab.workflows.variants import FINETUNE

RESULTS = Path(__file__).parent / "results"
NEC = 5.0
SEEDS = (0, 1, 2)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182}

BASE: dict[str, Any] = dict(FINETUNE)
#: one factor at a time from conceptlab's gumbel (label, settings on top of BASE)
ABLATION: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("default (tau 1 -> 0.1 over 5 epochs, soft, weight 1, lr 1e-3)", "gumbel", {}),
    ("tau fixed 0.1", "gumbel", {"anneal": False}),
    ("tau 1 -> 0.3", "gumbel", {"tau_min": 0.3}),
    ("tau fixed 1", "gumbel", {"anneal": False, "tau_min": 1.0}),
    ("tau fixed 3", "gumbel", {"anneal": False, "tau_start": 3.0, "tau_min": 3.0}),
    ("head input hard (soft training, one-hot at evaluation)", "gumbel", {"eval_hard": True}),
    ("head input straight-through one-hot", "gumbel", {"hard": True}),
    ("loss: cross-entropy only (weight 0)", "gumbel", {"weight": 0.0}),
    ("contrastive weight (lambda) 0.1", "gumbel", {"weight": 0.1}),
    ("contrastive weight (lambda) 3", "gumbel", {"weight": 3.0}),
    ("lr 1e-2", "gumbel", {"lr": 1e-2}),
    ("lr 3e-4", "gumbel", {"lr": 3e-4}),
    ("l1 (ours, for reference)", "l1", {}),
)
#: the factors, for the combined row (each factor's best single change on validation)
FACTORS: dict[str, tuple[str, ...]] = {
    "tau": ("tau fixed 0.1", "tau 1 -> 0.3", "tau fixed 1", "tau fixed 3"),
    "head input": ("head input hard (soft training, one-hot at evaluation)",
                   "head input straight-through one-hot"),
    "loss": ("loss: cross-entropy only (weight 0)", "contrastive weight (lambda) 0.1",
             "contrastive weight (lambda) 3"),
    "lr": ("lr 1e-2", "lr 3e-4"),
}

def interval(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(T_975[len(v) - 1] * v.std(ddof=1) / np.sqrt(len(v)))


def top_unit_ceiling(model: ConceptBottleneckModel, prep: Prepared) -> float:
    """Validation accuracy of 'the majority training class of the example's top unit'."""
    ut = model.unit_values(prep.X["train"]).argmax(1)
    uv = model.unit_values(prep.X["val"]).argmax(1)
    n_classes = len(prep.class_names)
    table = np.zeros((model.n_concepts, n_classes))
    np.add.at(table, (ut, prep.y["train"]), 1.0)
    best = table.argmax(1)
    return float((best[uv] == prep.y["val"]).mean())


def val_row(prep: Prepared, src: ConceptSource, method: str, options: dict[str, Any],
            seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = ConceptBottleneckModel.from_options(
        src.bank, prep.class_names, method=method, nec=NEC, options=options,
        association=src.association(prep.class_names), seed=seed)
    model.fit(prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"])
    return {"val_accuracy": model.metrics_["val_accuracy"],
            "val_mean_active_concepts": model.metrics_["val_mean_active_concepts"],
            "val_top_unit_ceiling": top_unit_ceiling(model, prep),
            "fit_seconds": round(time.perf_counter() - t0, 2)}


def choose(ablation: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule fixed before the runs: the gumbel row with the best validation accuracy among
    those with fewer validation active concepts per decision than l1 (issue 18's bar asks for
    fewer); the best gumbel row overall if none has fewer."""
    l1 = next(r for r in ablation if r["method"] == "l1")
    gumbels = [r for r in ablation if r["method"] == "gumbel"]
    fewer = [r for r in gumbels
             if r["val_mean_active_concepts"] < l1["val_mean_active_concepts"]]
    return max(fewer or gumbels, key=lambda r: r["val_accuracy"])


def combined_options(ablation: list[dict[str, Any]]) -> dict[str, Any]:
    """Each factor's best single change on validation, where it beats the default, merged."""
    rows = {r["config"]: r for r in ablation}
    default = next(r for r in ablation if r["config"].startswith("default"))
    merged: dict[str, Any] = {}
    for names in FACTORS.values():
        present = [rows[n] for n in names if n in rows]
        if present:
            best = max(present, key=lambda r: r["val_accuracy"])
            if best["val_accuracy"] > default["val_accuracy"]:
                merged.update(best["options"])
    return merged


def run(cfg: RunConfig, label: str, quick: bool) -> dict[str, Any]:
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    ablation = []
    grid = (*ABLATION[:3], ABLATION[-1]) if quick else ABLATION
    for name, method, extra in grid:
        opts = {**BASE, **extra, "show_progress": False}
        row = {"config": name, "method": method, "options": extra,
               **val_row(prep, src, method, opts, 0)}
        print(f"{label} | {name}: val {row['val_accuracy']:.3f} active "
              f"{row['val_mean_active_concepts']:.2f} ceiling "
              f"{row['val_top_unit_ceiling']:.3f}", flush=True)
        ablation.append(row)
    merged = combined_options(ablation)
    if merged and merged not in [r["options"] for r in ablation]:
        name = "combined: each factor's best change"
        row = {"config": name, "method": "gumbel", "options": merged,
               **val_row(prep, src, "gumbel", {**BASE, **merged, "show_progress": False}, 0)}
        print(f"{label} | {name} {merged}: val {row['val_accuracy']:.3f} active "
              f"{row['val_mean_active_concepts']:.2f}", flush=True)
        ablation.append(row)
    best = choose(ablation)  # chosen on validation, before any test score is computed
    compare = {"gumbel (best on validation)": ("gumbel", {**BASE, **best["options"]}),
               "gumbel (default)": ("gumbel", dict(BASE)),
               "l1 (ours)": ("l1", dict(BASE)),
               "ref:sparsecbm-gumbel": ("ref:sparsecbm-gumbel", {}),
               "ref:sparsecbm-l1": ("ref:sparsecbm-l1", {})}
    per_seed: dict[str, list[dict[str, Any]]] = {}
    for name, (method, opts) in compare.items():
        if name == "gumbel (default)" and not best["options"]:
            per_seed[name] = per_seed["gumbel (best on validation)"]  # the same fits
            continue
        for seed in SEEDS[:1] if quick else SEEDS:
            try:
                _, row = fit_cbm(prep, src, method, NEC, {**opts, "show_progress": False},
                                 seed=seed, controls=False)
            except (FloatingPointError, ComputeError) as err:  # -log(gumbel_softmax) can
                per_seed.setdefault(name, []).append({"seed": seed, "diverged": str(err)})
                print(f"{label} | test {name} seed {seed}: diverged ({err})", flush=True)
                continue
            per_seed.setdefault(name, []).append(
                {"seed": seed, "accuracy": row["accuracy"],
                 "mean_active_concepts": row["mean_active_concepts"],
                 "unit_fidelity_median": row["faithfulness"]["unit_fidelity_median"]})
            print(f"{label} | test {name} seed {seed}: {row['accuracy']:.3f} active "
                  f"{row['mean_active_concepts']:.2f}", flush=True)
    summary: dict[str, dict[str, Any]] = {}
    for name, rows in per_seed.items():
        ok = [r for r in rows if "diverged" not in r]
        summary[name] = {k: interval([r[k] for r in ok]) if ok else None
                         for k in ("accuracy", "mean_active_concepts", "unit_fidelity_median")}
        summary[name]["n_diverged"] = len(rows) - len(ok)
    diff = [g["accuracy"] - b["accuracy"] for g, b in
            zip(per_seed["gumbel (best on validation)"], per_seed["l1 (ours)"], strict=True)]
    return {"config": dataclasses.asdict(cfg), "splits": prep.splits.record,
            "sizes": {k: len(prep.y[k]) for k in ("train", "val", "test")},
            "n_concepts": len(src.bank), "chosen_on_validation": best["config"],
            "chosen_options": best["options"],
            "selection_rule": "best validation accuracy among gumbel rows with fewer "
                              "validation active concepts per decision than l1",
            "ablation": ablation, "per_seed": per_seed, "summary": summary,
            "paired_best_gumbel_minus_l1": interval(diff)}


def idsprites_map(n_train: int, n_test: int) -> str:
    """The caption-trained linear map (LiMBeR) on idsprites, as bench_faithfulness fits it."""
    from conceptlab.workflows.align import AlignConfig, run_align

    map_dir = RESULTS.parent.parent / "runs" / f"bench-gumbel-map-{n_train}-{n_test}"
    if not (map_dir / "metrics.json").exists():
        run_align(AlignConfig(data="idsprites", seed=0,
                              data_options={"n_train": n_train, "n_test": n_test}), map_dir)
    return f"linear:{map_dir}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--sprites-n-train", type=int, default=2000)
    ap.add_argument("--sprites-n-test", type=int, default=1000)
    ap.add_argument("--only", choices=("fashion", "idsprites"), default=None,
                    help="run one section and update it in an existing JSON")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_gumbel_ablation.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"command": "benchmarks/bench_gumbel_ablation.py", "nec": NEC,
                           "seeds": list(SEEDS), "machine": platform.platform()}
    if args.only and args.out.exists():
        out = json.loads(args.out.read_text(encoding="utf-8"))
    seconds = dict(out.get("section_seconds", {}))
    if args.only in (None, "fashion"):
        t1 = time.perf_counter()
        cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                        n_val=args.n_val, n_test=args.n_test, seed=0)
        out["fashion-mnist / ConSE"] = run(cfg, "fashion", args.quick)
        seconds["fashion-mnist / ConSE"] = round(time.perf_counter() - t1, 1)
    if args.only in (None, "idsprites"):
        t1 = time.perf_counter()
        spec = idsprites_map(args.sprites_n_train, args.sprites_n_test)
        cfg = RunConfig(data="idsprites", encoder=spec, seed=0,
                        data_options={"n_train": args.sprites_n_train,
                                      "n_test": args.sprites_n_test})
        out["idsprites / caption map"] = run(cfg, "idsprites", args.quick)
        seconds["idsprites / caption map"] = round(time.perf_counter() - t1, 1)
    out["section_seconds"] = seconds
    out["seconds"] = round(sum(seconds.values()), 1)
    write_json_atomic(args.out, out)
    print(f"wrote {args.out} ({round(time.perf_counter() - t0, 1)} s)")


if __name__ == "__main__":
    main()
