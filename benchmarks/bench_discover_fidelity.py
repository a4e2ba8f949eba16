"""Fidelity of concept-importance rankings: Sobol (CRAFT), gradient x input, occlusion and a
random order, on concept deletion / insertion AUC and mu-fidelity, over 3 seeds.

Fashion-MNIST through EfficientNet-Lite0 at 128 px, 10 concepts per class on CRAFT crops of
100 training images per class at the `features` layer; importance and fidelity on 30 held-out
test images per class, for the decision of a linear probe on the pooled features. The seed
moves the dictionary's initialisation, the Sobol design's scrambling, the random orders and
mu-fidelity's subsets; the images and crops stay fixed (so the cache serves every seed).

    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_discover_fidelity.py
    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_discover_fidelity.py \
        --layer _blocks.15 --source spatial --methods seminmf sae --tag blocks15

The second run factorises a signed earlier layer (each map position a row) where the rest of
the network after the concepts is nonlinear (conv_head, BN, ReLU6, pool, probe).

Writes benchmarks/results/bench_discover_fidelity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from conceptlab.workflows.discover import run_discover, run_importance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("deletion_auc", "insertion_auc", "mu_fidelity")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["nmf", "sae"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n-per-class", type=int, default=100)
    ap.add_argument("--n-images", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--layer", default="features")
    ap.add_argument("--source", default="crops", choices=["crops", "spatial"])
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "discover-fidelity")
    args = ap.parse_args()
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    t0 = time.perf_counter()
    per: dict[str, dict[str, dict[str, list[float]]]] = {}
    for method in args.methods:
        for seed in args.seeds:
            out = args.runs / f"{method}-{args.layer}-{args.source}-seed{seed}"
            m = run_discover("fashion-mnist", out, method=method, k=args.k, image_size=128,
                             n_per_class=args.n_per_class, n_crops=8, seed=seed,
                             layer=args.layer, source=args.source)
            classes = list(m["per_class"])
            fids = [run_importance(out, c, n_images=args.n_images, seed=seed)["fidelity"]
                    for c in classes]
            for order in fids[0]:
                d = per.setdefault(method, {}).setdefault(order, {k: [] for k in METRICS})
                for k in METRICS:
                    d[k].append(float(np.nanmean([f[order][k] for f in fids])))
            print(f"{method} seed {seed}: " + ", ".join(
                f"{o} del {per[method][o]['deletion_auc'][-1]:.3f}" for o in per[method]),
                flush=True)
    table = ["| dictionary | order | deletion AUC (lower better) | insertion AUC (higher) | "
             "mu-fidelity (higher) |", "|---|---|---|---|---|"]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for method, orders in per.items():
        for order, d in orders.items():
            s = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v}
                 for k, v in d.items()}
            summary.setdefault(method, {})[order] = s
            table.append(f"| {method} | {order} | " + " | ".join(
                f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}" for k in METRICS) + " |")
    RESULTS.mkdir(exist_ok=True)
    record = {"seeds": args.seeds, "n_per_class": args.n_per_class, "n_images": args.n_images,
              "k": args.k, "image_size": 128, "layer": args.layer, "source": args.source,
              "summary": summary,
              "seconds": round(time.perf_counter() - t0, 1)}
    name = "bench_discover_fidelity" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
