"""Time the final-layer fits on cached-array sizes: 60k examples x {64, 384} inputs, 10 classes.

Goal (DESIGN.md: "every method after [encoding] takes seconds"): fitting a head on 60k cached
rows must take well under the ~50 s it costs to encode 1k images with EfficientNet-Lite0 on
2 cores. Data: 10 class prototypes in a 32-d latent space, per-example latent noise, a fixed
random projection to K dimensions plus per-feature noise and an offset (so standardisation
matters), i.e. correlated, low-rank-plus-noise features like real embeddings or concept scores.
Dense fits use 54k train / 6k validation rows, every head is scored on 10k held-out rows.

A tiny warm-up fit runs first: the first torch optimiser step in a process imports
torch._dynamo (about 3 s), which is a one-time cost, not a fit cost; it is reported apart.

Also measured: one epoch of glm-saga's minibatch SAGA (the reference solver of Label-free CBM
and VLG-CBM) on the same data, to show what the reference path would cost here.

Usage: python benchmarks/bench_heads.py [--dims 64 384] [--dense-1280] [--threads N]
Writes benchmarks/results/bench_heads.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab import metrics
from conceptlab.bottleneck.heads import SagaPath, fit_dense_head, fit_sparse_head
from conceptlab.utils.io import write_json_atomic
from conceptlab.utils.threads import threads_for, torch_threads

RESULTS = Path(__file__).resolve().parent / "results" / "bench_heads.json"
N_TRAIN, N_VAL, N_TEST, N_CLASSES, LATENT = 54_000, 6_000, 10_000, 10, 32


def make_data(k: int, seed: int = 0, latent_noise: float = 1.6,
              feature_noise: float = 0.5) -> dict[str, np.ndarray]:
    """Prototypes + latent noise, projected to ``k`` dims, + feature noise + offset."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
    protos = rng.normal(size=(N_CLASSES, LATENT))
    y = rng.integers(0, N_CLASSES, n)
    h = protos[y] + latent_noise * rng.normal(size=(n, LATENT))
    proj = rng.normal(size=(LATENT, k)) / np.sqrt(LATENT)
    Z = (h @ proj + feature_noise * rng.normal(size=(n, k)) + 2.0).astype(np.float32)
    a, b = N_TRAIN, N_TRAIN + N_VAL
    return {"Zt": Z[:a], "yt": y[:a], "Zv": Z[a:b], "yv": y[a:b], "Zs": Z[b:], "ys": y[b:]}


def time_fit(name: str, k: int, fit: Any, d: dict[str, np.ndarray]) -> dict[str, Any]:
    start = time.perf_counter()
    head = fit(d["Zt"], d["yt"], d["Zv"], d["yv"])
    seconds = time.perf_counter() - start
    row = {
        "fit": name, "n_train": len(d["Zt"]), "k": k, "classes": N_CLASSES,
        "seconds": round(seconds, 3), "test_accuracy": metrics.accuracy(d["ys"],
                                                                        head.predict(d["Zs"])),
        "val_accuracy": head.info["val_accuracy"], "nec": head.nec,
        "nnz": int((head.weight != 0).sum()), "threads": head.info.get("threads"),
        "iterations": head.info.get("epochs"),
    }
    for key in ("weight_decay", "lambda_ratio", "path_points", "path_nnz",
                "truncated_val_accuracy", "path_val_accuracy", "refit_iterations"):
        if key in head.info:
            row[key] = head.info[key]
    print(f"{name:<22} {k:>5} {seconds:>8.2f} {row['test_accuracy']:>9.4f} "
          f"{row['nec']:>7.1f} {row['threads']!s:>7}", flush=True)
    return row


def time_saga_epoch(k: int, d: dict[str, np.ndarray], threads: int | None) -> dict[str, Any]:
    """Seconds per glm-saga epoch (batch 256, step 0.1) at one penalty on the standardised data."""
    mean, std = d["Zt"].mean(0), d["Zt"].std(0)
    X = torch.from_numpy((d["Zt"] - mean) / std)
    y = torch.from_numpy(d["yt"])
    epochs = 2
    shape = np.shape(d["Zt"])
    with torch_threads(threads or threads_for(shape[0] * shape[1] * N_CLASSES)) as used:
        path = SagaPath(X, y, N_CLASSES, alpha=0.99, max_iter=epochs, tol=0.0)
        W, b = torch.zeros(N_CLASSES, k), torch.zeros(N_CLASSES)
        start = time.perf_counter()
        path.solve(W, b, 0.05, 0.06, path.gradient(W, b))
        per_epoch = (time.perf_counter() - start) / epochs
    print(f"{'glm-saga, 1 epoch':<22} {k:>5} {per_epoch:>8.2f} {'':>9} {'':>7} {used:>7}",
          flush=True)
    return {"fit": "glm_saga_epoch", "k": k, "n_train": len(d["Zt"]),
            "seconds_per_epoch": round(per_epoch, 3), "threads": used,
            "note": "one epoch = N / 256 SAGA steps; Label-free CBM and VLG-CBM run up to "
                    "hundreds of epochs per path point"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 384])
    parser.add_argument("--dense-1280", action="store_true",
                        help="also time a dense fit on 60k x 1280 (backbone-feature size)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads inside the fits (default: the heads' automatic rule)")
    parser.add_argument("--no-saga", action="store_true", help="skip the glm-saga epoch timing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load_before[0]:.2f}")
    print(f"{'fit':<22} {'K':>5} {'seconds':>8} {'test acc':>9} {'NEC':>7} {'threads':>7}")
    rows: list[dict[str, Any]] = []
    # the first torch optimiser step in a process imports torch._dynamo (~3 s): not a fit cost
    warm = make_data(8)
    start = time.perf_counter()
    fit_dense_head(warm["Zt"][:300], warm["yt"][:300], warm["Zv"][:100], warm["yv"][:100],
                   n_classes=N_CLASSES, max_iter=2)
    warmup_seconds = time.perf_counter() - start
    print(f"{'(warm-up, one-time)':<22} {'':>5} {warmup_seconds:>8.2f}")
    for k in args.dims:
        d = make_data(k)
        rows.append(time_fit("dense", k, lambda *a: fit_dense_head(
            *a, n_classes=N_CLASSES, num_threads=args.threads), d))
        rows.append(time_fit("sparse nec=5", k, lambda *a: fit_sparse_head(
            *a, n_classes=N_CLASSES, nec=5, num_threads=args.threads), d))
        if not args.no_saga and k == min(args.dims):
            rows.append(time_saga_epoch(k, d, args.threads))
    if args.dense_1280:
        d = make_data(1280)
        rows.append(time_fit("dense", 1280, lambda *a: fit_dense_head(
            *a, n_classes=N_CLASSES, num_threads=args.threads), d))
    result = {
        "benchmark": "bench_heads", "rows": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads_default": torch.get_num_threads(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "data": {"n_train": N_TRAIN, "n_val": N_VAL, "n_test": N_TEST, "classes": N_CLASSES,
                 "latent": LATENT, "generator": "make_data(k, seed=0)"},
        "threads_arg": args.threads, "warmup_seconds": round(warmup_seconds, 3),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
