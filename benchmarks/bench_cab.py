"""Concept association bias against the association strength in the training captions.

For each seed s and association level p: render ``twoshapes`` (data seed s) whose training
circles are red with probability p (other shapes: any colour), fit a caption map on its
captions (``conceptlab align``, EfficientNet-Lite0 -> MiniLM, ridge and contrastive, chosen on
validation captions, seed s), and measure the bias on the probe (the test split: colours
uniform, the same images at every level of a seed): asked "a {colour} {shape}" for each object
of a two-object scene, the share of answers naming the other object's colour, against the
one-object baseline (``cab.measure``). p = 0.17 is no association (1 in 6 colours).

    python benchmarks/bench_cab.py [--seeds 0 1 2] [--levels 0.17 0.5 0.8 0.95]

Writes benchmarks/results/bench_cab.{json,md} and bench_cab.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from conceptlab.align.evaluate import mean_interval
from conceptlab.report.cab_plots import plot_cab
from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.cab import run_cab

RESULTS = Path(__file__).parent / "results"
KEYS = ("single_accuracy", "correct_rate", "other_rate", "cab", "other_rate_assoc",
        "fill_rate", "fill_rate_single", "map_test_R@5")


def summarise(per_seed: list[dict[str, Any]], levels: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, p in enumerate(levels):
        out[f"{p:g}"] = {k: mean_interval([s["rows"][i][k] for s in per_seed]) for k in KEYS}
    hi, lo = len(levels) - 1, 0
    for k in ("cab", "other_rate_assoc", "fill_rate"):
        out[f"paired_{k}_highest_minus_lowest"] = mean_interval(
            [s["rows"][hi][k] - s["rows"][lo][k] for s in per_seed])
    return out


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"twoshapes, {result['n_train']} training scenes per level, probe of "
             f"{result['n_test']} test scenes, seeds {result['seeds']}; share of answers.", "",
             "| red circles in training | single-object accuracy | two-object accuracy | "
             "other object's colour | CAB | other's colour when it is a red circle | "
             "'red' for a non-red circle (two objects) | same, circle alone | map R@5 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in result["levels"]:
        r = s[f"{p:g}"]
        lines.append(f"| {p:g} | " + " | ".join(
            f"{r[k][0]:.3f} ± {r[k][1]:.3f}" for k in KEYS) + " |")
    lines.append("")
    for k in ("cab", "other_rate_assoc", "fill_rate"):
        d = s[f"paired_{k}_highest_minus_lowest"]
        lines.append(f"- {k}, highest minus lowest level (paired by seed): "
                     f"{d[0]:+.3f} ± {d[1]:.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--levels", type=float, nargs="+", default=[0.17, 0.5, 0.8, 0.95])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    t0 = time.perf_counter()
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            m = run_cab(Path(tmp) / f"seed{seed}", levels=args.levels, seed=seed,
                        n_train=args.n_train, n_test=args.n_test,
                        contrastive_epochs=args.epochs)
            per_seed.append({"seed": seed, "rows": m["rows"]})
            print(seed, [(r["association"], round(r["cab"], 3), round(r["fill_rate"], 3))
                         for r in m["rows"]], flush=True)
    result = {"benchmark": "bench_cab", "seeds": args.seeds, "levels": args.levels,
              "n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
              "per_seed": per_seed, "summary": summarise(per_seed, args.levels),
              "seconds": time.perf_counter() - t0,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "command": "python benchmarks/bench_cab.py"}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "bench_cab.json", result)
    md = table(result)
    write_text_atomic(RESULTS / "bench_cab.md", md + "\n")
    plot_cab([s["rows"] for s in per_seed], RESULTS / "bench_cab.png",
             title="twoshapes through caption maps: bias vs association (3 seeds)")
    print(md)


if __name__ == "__main__":
    main()
