"""Sobol (CRAFT's importance) against occlusion and gradient x input, compared fairly (issue 18).

At the `features` layer the probe's logit is linear in the concept codes, so occlusion is exact
there and CRAFT's own theory predicts a tie. Here instead:

* the concepts are found at `_blocks.15` (map positions as rows, semi-NMF: signed activations),
  where the rest of the network (conv_head, BN, ReLU6, pooling, the probe) is not linear in the
  codes;
* Sobol at 32 designs (the paper's default) and at 256;
* deletion / insertion / mu-fidelity scored twice: removing a concept by zeroing its codes
  (occlusion's own perturbation) and by replacing them with the codes of other held-out
  images of the class (``resample``: no estimator's perturbation).

Fashion-MNIST through EfficientNet-Lite0 at 128 px, classes and sizes below, seeds 0, 1, 2
(the seed moves the dictionary, the Sobol scrambling, random orders and donors).

    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_sobol_fair.py

Writes benchmarks/results/bench_sobol_fair.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.utils.io import write_json_atomic
from conceptlab.workflows.discover import run_discover, run_importance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("deletion_auc", "insertion_auc", "mu_fidelity")
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def interval(values: list[float]) -> list[float]:
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return [float(v.mean()), 0.0]
    return [float(v.mean()), float(T_975[len(v) - 1] * v.std(ddof=1) / np.sqrt(len(v)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", nargs="+", default=["Trouser", "Bag", "Sneaker"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n-per-class", type=int, default=40)
    ap.add_argument("--n-images", type=int, default=6)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--designs", nargs="+", type=int, default=[32, 256])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "sobol-fair")
    args = ap.parse_args()
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    t0 = time.perf_counter()
    # per (order, baseline) -> per seed -> mean over classes
    per: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        out = args.runs / f"seed{seed}"
        m = run_discover("fashion-mnist", out, method="seminmf", k=args.k, image_size=128,
                         n_per_class=args.n_per_class, seed=seed, layer="_blocks.15",
                         source="spatial", classes=args.classes)
        for baseline in ("zero", "resample"):
            for nd in args.designs:
                methods = ("sobol", "gradient_input", "occlusion") if nd == args.designs[0] \
                    else ("sobol",)
                fids = [run_importance(out, c, n_images=args.n_images, seed=seed,
                                       n_design=nd, methods=methods, baseline=baseline,
                                       out=out / "imp" / f"{baseline}-{nd}" / str(i))
                        ["fidelity"] for i, c in enumerate(m["classes"])]
                for order in fids[0]:
                    if order != "sobol" and nd != args.designs[0]:
                        continue
                    label = f"sobol ({nd} designs)" if order == "sobol" else order
                    key = f"{label} | {baseline}"
                    for metric in METRICS:
                        per.setdefault(key, {}).setdefault(metric, []).append(
                            float(np.nanmean([f[order][metric] for f in fids])))
            print(f"seed {seed} {baseline} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        write(args, per, t0)  # after every seed: a run stopped early keeps what it finished
    return 0


def write(args: argparse.Namespace, per: dict[str, dict[str, list[float]]], t0: float) -> None:
    """The JSON and the markdown of the seeds done so far."""
    summary = {k: {metric: interval(v) for metric, v in d.items()} for k, d in per.items()}
    result: dict[str, Any] = {
        "command": "benchmarks/bench_sobol_fair.py", "layer": "_blocks.15", "method": "seminmf",
        "source": "spatial", "classes": args.classes, "seeds": args.seeds,
        "n_per_class": args.n_per_class, "n_images": args.n_images, "k": args.k,
        "designs": args.designs, "per_seed": per, "summary": summary,
        "seeds_done": len(next(iter(per.values()))["deletion_auc"]),
        "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "bench_sobol_fair.json", result)
    (RESULTS / "bench_sobol_fair.md").write_text(render(result), encoding="utf-8")
    print(render(result), flush=True)


def render(r: dict[str, Any]) -> str:
    """The table and the sentences that state the result, from the JSON."""
    lines = [f"`{r['command']}` ({r['seconds']} s): {r['method']} concepts (k = {r['k']}) at "
             f"`{r['layer']}` ({r['source']} rows), Fashion-MNIST classes {r['classes']}, "
             f"{r['n_per_class']} training and {r['n_images']} held-out test images per class, "
             f"seeds {r['seeds'][:r.get('seeds_done', len(r['seeds']))]} (mean ± 95% t-interval "
             "over seeds of the mean over classes).",
             "", "| order | removed concept becomes | deletion AUC (lower better) | "
             "insertion AUC (higher) | mu-fidelity (higher) |", "|---|---|---|---|---|"]
    for key, s in r["summary"].items():
        order, baseline = key.split(" | ")
        cells = " | ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}" for m in METRICS)
        lines.append(f"| {order} | {'zero' if baseline == 'zero' else 'other images codes'} "
                     f"| {cells} |")
    lines.append("")
    for baseline in ("zero", "resample"):
        rows = {k.split(" | ")[0]: v for k, v in r["summary"].items()
                if k.endswith(f"| {baseline}") and not k.startswith("random")}
        best = min(rows, key=lambda k: rows[k]["deletion_auc"][0])
        lo = {k: v["deletion_auc"][0] + v["deletion_auc"][1] for k, v in rows.items()}
        tied = [k for k in rows if rows[k]["deletion_auc"][0] - rows[k]["deletion_auc"][1]
                <= lo[best]]
        lines.append(f"Removal by {'zeroing' if baseline == 'zero' else 'resampling'}: lowest "
                     f"deletion AUC {best} ({rows[best]['deletion_auc'][0]:.3f}); intervals "
                     f"overlapping it: {', '.join(sorted(tied))}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
