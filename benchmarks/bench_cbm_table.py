"""The Sparse-CBM comparison table: every method on one set of cached embeddings.

Fashion-MNIST (full official test split) through the offline ConSE space, and the
concept-benchmark robot texts through MiniLM (with concept accuracy and intervention
curves). Also times each method's fit on 60k cached rows against encoding 1k images.

    .venv/bin/python benchmarks/bench_cbm_table.py [--n-train 10000] [--quick]

Prints markdown tables and writes benchmarks/results/bench_cbm_table.{json,md} and PNGs.
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

from conceptlab.report.plots import plot_intervention_curve
from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.baselines import backbone_features, probe_accuracy
from conceptlab.workflows.cbm import comparison_rows, fit_cbm
from conceptlab.workflows.concepts import concept_source
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare
from conceptlab.workflows.variants import ALL_VARIANTS, SUPERVISED

RESULTS = Path(__file__).parent / "results"
METHODS = ALL_VARIANTS


def _fmt_rows(rows: list[dict[str, Any]], with_concepts: bool = False) -> str:
    head = "| method | head | test accuracy | mean active concepts | fit s |"
    sep = "|---|---|---|---|---|"
    if with_concepts:
        head += " concept accuracy |"
        sep += "---|"
    lines = [head, sep]
    for r in rows:
        if "nec_requested" not in r:
            nec = "-"
        else:
            nec = "dense" if r["nec_requested"] is None else f"NEC={r['nec_requested']:g}"
        mac = r.get("mean_active_concepts")
        line = (f"| {r['method']} | {nec} | {r['accuracy']:.4f} | "
                f"{'-' if mac is None else f'{mac:.2f}'} | {r.get('fit_seconds', 0.0):.2f} |")
        if with_concepts:
            ca = r.get("concept_accuracy")
            line += f" {'-' if ca is None else f'{ca:.4f}'} |"
        lines.append(line)
    return "\n".join(lines)


def fit_time_at_60k(prep: Prepared, src: Any, n_rows: int, seed: int) -> list[dict[str, Any]]:
    """Fit seconds of each method on ``n_rows`` cached rows (real train embeddings resampled
    with small jitter: timing depends on rows and concepts, not on which images they are)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(prep.X["train"]), size=n_rows)
    X = prep.X["train"][idx] + rng.normal(0, 0.01, (n_rows, prep.X["train"].shape[1]))
    big = Prepared(prep.config, prep.dataset, prep.splits, prep.encoder, prep.views,
                   {"train": X.astype(np.float32), "val": prep.X["val"], "test": prep.X["test"]},
                   {"train": prep.y["train"][idx], "val": prep.y["val"], "test": prep.y["test"]},
                   prep.encode_stats)
    out = []
    for variant in METHODS:
        label = variant.label
        for nec in (None, 5.0):
            _, row = fit_cbm(big, src, variant.objective, nec, variant.options, controls=False)
            out.append({"method": label, "nec_requested": nec, "rows": n_rows,
                        "fit_seconds": row["fit_seconds"]})
            print(f"60k fit {label} nec={nec}: {row['fit_seconds']:.1f}s", flush=True)
    return out


def time_encoding(prep: Prepared, n: int) -> float:
    """Seconds to encode ``n`` test images with the run's encoder, bypassing the cache, in
    this process (same threads as the fits it is compared with)."""
    items = prep.splits.test.items(0, n)
    prep.encoder.encode_images(items[: prep.encoder.batch_size])  # warm-up
    t0 = time.perf_counter()
    prep.encoder.encode_images(items)
    return round(time.perf_counter() - t0, 2)


def fashion_table(args: argparse.Namespace) -> dict[str, Any]:
    cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train, n_val=args.n_val,
                    n_test=args.n_test, seed=args.seed)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    print(f"fashion: prepared in {time.perf_counter() - t0:.1f}s; {len(src.bank)} concepts",
          flush=True)
    rows = comparison_rows(prep, src, variants=METHODS, progress_label="fashion:")
    F = backbone_features(prep)
    assert F is not None, "conse caches the backbone's features view"
    t1 = time.perf_counter()
    facc, _ = probe_accuracy(prep, F)
    rows.append({"method": "linear-probe (backbone 1280-d features, no concepts)",
                 "nec_requested": None, "accuracy": facc,
                 "fit_seconds": round(time.perf_counter() - t1, 3)})
    enc = prep.encode_stats
    per_image = [s["seconds"] / s["rows"] for s in enc.values()
                 if not s["from_cache"] and s["rows"]]
    if not per_image and args.encode_record and Path(args.encode_record).is_file():
        from conceptlab.utils.io import read_json

        rec = read_json(args.encode_record)["encoding"]
        per_image = [s["seconds"] / s["rows"] for s in rec.values()
                     if not s["from_cache"] and s["rows"]]
    result: dict[str, Any] = {"rows": rows, "config": cfg.__dict__, "splits": prep.splits.record,
                              "encoding": enc, "n_concepts": len(src.bank),
                              "encode_seconds_per_1k_images": (
                                  round(1000 * float(np.mean(per_image)), 1) if per_image
                                  else None)}
    if not args.skip_60k:
        result["fit_60k"] = fit_time_at_60k(prep, src, 54000, args.seed)
        result["encode_1k_seconds_measured"] = time_encoding(prep, 1000)
        print(f"encoding 1k test images (no cache): "
              f"{result['encode_1k_seconds_measured']:.1f}s", flush=True)
    return result


def robots_table(args: argparse.Namespace) -> dict[str, Any]:
    cfg = RunConfig(data="robots-text", encoder="minilm", seed=args.seed,
                    n_train=args.robots_n_train)
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    rows = comparison_rows(prep, src, variants=(*METHODS, SUPERVISED),
                           progress_label="robots:")
    curves = {f"{r['method']} ({'dense' if r['nec_requested'] is None else 'NEC=5'})":
              r["intervention_curve"] for r in rows if "intervention_curve" in r}
    png = plot_intervention_curve(curves, RESULTS / "robots_intervention.png",
                                  title="robot texts: test-time intervention (random order)")
    return {"rows": rows, "config": cfg.__dict__, "splits": prep.splits.record,
            "n_concepts": len(src.bank), "intervention_png": str(png)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=None, help="default: all (54k)")
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None, help="default: full official test")
    ap.add_argument("--robots-n-train", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-60k", action="store_true")
    ap.add_argument("--encode-record", default="runs/bench-encode-full/metrics.json",
                    help="metrics.json of the `conceptlab encode` run that filled the cache "
                         "(its timings give the cost of encoding 1k images)")
    ap.add_argument("--only", choices=("fashion", "robots"), default=None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.robots_n_train = 300, 100, 200, 300
        args.skip_60k = True
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "torch": torch.__version__,
                                       "python": platform.python_version()},
                           "seed": args.seed, "quick": args.quick}
    md = []
    if args.only in (None, "fashion"):
        out["fashion_mnist"] = fashion_table(args)
        md += ["### Fashion-MNIST, offline ConSE (EfficientNet-Lite0 + MiniLM)", "",
               _fmt_rows(out["fashion_mnist"]["rows"]), ""]
        if "fit_60k" in out["fashion_mnist"]:
            md += ["Fit seconds on 54k cached rows vs encoding 1k images in the same process "
                   f"({out['fashion_mnist']['encode_1k_seconds_measured']} s):", "",
                   "| method | head | fit s (54k rows) |", "|---|---|---|"]
            md += [f"| {r['method']} | {'dense' if r['nec_requested'] is None else 'NEC=5'} | "
                   f"{r['fit_seconds']:.1f} |" for r in out["fashion_mnist"]["fit_60k"]]
            md.append("")
    if args.only in (None, "robots"):
        out["robots_text"] = robots_table(args)
        md += ["### Robot texts (concept-benchmark), MiniLM", "",
               _fmt_rows(out["robots_text"]["rows"], with_concepts=True), ""]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    name = "bench_cbm_table_quick" if args.quick else "bench_cbm_table"
    write_json_atomic(RESULTS / f"{name}.json", out)
    write_text_atomic(RESULTS / f"{name}.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
