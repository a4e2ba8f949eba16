"""Concept discovery on 60k cached activation rows: fit time, encode time and peak memory per
dictionary method, side by side in one run.

Rows: the `features` map of EfficientNet-Lite0 at 128 px (4 x 4 positions x 1280 channels) of
3,750 Fashion-MNIST training images (375 per class), each position a row: 60,000 x 1280
float32 (293 MiB), read from the activation cache (encoded once on the first run).

    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_discover.py [--k 10]

Each method runs in a fresh subprocess; memory is that process's peak RSS while fitting and
encoding (VmHWM, reset through /proc/self/clear_refs once the rows are loaded) minus its RSS
then, i.e. what the method itself added. ``--update`` merges into an existing result. Writes
benchmarks/results/bench_discover.json and the ``<!-- discover-cost:start/end -->`` block of
docs/benchmarks.md (the table and the sentences under it, from the JSON: ``block``);
``--docs-only`` rewrites that block from the saved JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BLOCK = "discover-cost"
SAES = ("sae", "topk-sae", "batchtopk-sae")
METHODS = ["pca", "kmeans", "nmf", "seminmf", "ica", "sae", "topk-sae", "batchtopk-sae"]


def rows(image_size: int, per_class: int) -> tuple[np.ndarray, dict]:
    from conceptlab.cache import ActivationCache
    from conceptlab.data.base import build_dataset
    from conceptlab.discover.sources import build_tapped
    from conceptlab.workflows.discover import cached_extract, per_class_subset

    ds = build_dataset("fashion-mnist")
    train = per_class_subset(ds.official_split("train"), per_class, list(range(10)))
    tapped = build_tapped("efficientnet", "features", image_size=image_size)
    acts = cached_extract(ActivationCache(), tapped, train, "spatial", batch_size=32)
    return acts.rows, {"images": len(train), "grid": acts.grid,
                       "data_fingerprint": train.fingerprint()}


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so that it measures from here on."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def one(method: str, k: int, image_size: int, per_class: int) -> dict:
    from conceptlab.discover import build_dictionary, dictionary_report

    A, _ = rows(image_size, per_class)
    base = rss_mib()
    reset_peak()
    opts = {"k": 4} if "topk" in method else {}
    d = build_dictionary(method, k, seed=0, **opts)
    t0 = time.perf_counter()
    d.fit(A)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    U = d.encode(A)
    t_enc = time.perf_counter() - t0
    peak = peak_mib()
    rep = dictionary_report(A, U, d.decode(U))
    return {"method": method, "k": k, "rows": int(A.shape[0]), "dims": int(A.shape[1]),
            "fit_s": round(t_fit, 2), "encode_s": round(t_enc, 2),
            "peak_added_mib": round(peak - base, 1),
            "rows_mib": round(A.nbytes / 2**20, 1), **{k2: round(float(v), 4)
                                                       for k2, v in rep.items()}}


def table(results: list[dict]) -> list[str]:
    lines = ["| method | fit s | encode s | fit vs fastest | peak added MiB | relative error | R² "
             "| sparsity | dead units |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['fit_s']:.1f} | {r['encode_s']:.2f} | "
                     f"{r['fit_vs_fastest']:.1f}x | {r['peak_added_mib']:.0f} | "
                     f"{r['relative_error']:.3f} | {r['r2']:.3f} | {r['sparsity']:.2f} | "
                     f"{r['dead_units']:.0f} |")
    return lines


def words(results: list[dict]) -> str:
    """The sentences under the table, each read off ``results``."""
    by = {r["method"]: r for r in results}
    fastest = min(results, key=lambda r: r["fit_s"])
    top = max(r["r2"] for r in results)
    best = [r["method"] for r in results if r["r2"] >= top - 5e-4]
    out = [f"{fastest['method']} is the fastest ({fastest['fit_s']:.1f} s); the best "
           "reconstruction for "
           f"{fastest['k']} atoms: {', '.join(best)} (R² {top:.3f})."]
    if "nmf" in by and by["nmf"] is not fastest:
        n, f = by["nmf"], fastest
        out.append(f"NMF costs {n['fit_s'] / f['fit_s']:.1f}x {f['method']}'s time and "
                   f"{(top - n['r2']) * 100:.1f} points of R² ({n['r2']:.3f} vs {top:.3f}) "
                   f"for non-negative codes with {n['sparsity'] * 100:.0f}% zeros.")
    saes = [by[m] for m in SAES if m in by]
    if saes:
        ratios = [r["fit_s"] / fastest["fit_s"] for r in saes]
        zeros = [r["sparsity"] * 100 for r in saes]
        out.append(f"The SAEs take {min(ratios):.0f}-{max(ratios):.0f}x for "
                   f"{min(zeros):.0f}-{max(zeros):.0f}% zero codes and apply to new rows in at "
                   f"most {max(r['encode_s'] for r in saes):.2f} s.")
    hungry = max(results, key=lambda r: r["peak_added_mib"])
    slowest = max(results, key=lambda r: r["fit_s"])
    out.append(f"{hungry['method']} is the most memory-hungry "
               f"({hungry['peak_added_mib'] / 1024:.1f} GiB above the rows) and "
               f"{slowest['method']} the slowest ({slowest['fit_s']:.0f} s).")
    dead = [r["method"] for r in results if r["dead_units"] > 0]
    out.append(f"No method left a dead unit at k = {fastest['k']}." if not dead else
               f"Dead units at k = {fastest['k']}: {', '.join(dead)}.")
    return " ".join(out)


def block(record: dict) -> str:
    from conceptlab.utils.docblocks import markers

    start, end = markers(BLOCK)
    return "\n".join([start, "", *table(record["results"]), "", words(record["results"]), "",
                       end])


def write_docs(record: dict) -> None:
    from conceptlab.utils.docblocks import markers, splice_file

    splice_file(DOCS, block(record), *markers(BLOCK))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--per-class", type=int, default=375)
    ap.add_argument("--one", default=None)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--update", action="store_true", help="merge into the saved result")
    ap.add_argument("--docs-only", action="store_true",
                    help="rewrite the docs block from the saved JSON and stop")
    args = ap.parse_args()
    if args.docs_only:
        write_docs(json.loads((RESULTS / "bench_discover.json").read_text()))
        return 0
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    if args.one:
        print(json.dumps(one(args.one, args.k, args.image_size, args.per_class)))
        return 0
    t0 = time.perf_counter()
    A, info = rows(args.image_size, args.per_class)  # encode into the cache once
    info["encode_or_load_s"] = round(time.perf_counter() - t0, 1)
    del A
    out = []
    for m in args.methods:
        res = subprocess.run([sys.executable, __file__, "--one", m, "--k", str(args.k),
                              "--image-size", str(args.image_size), "--per-class",
                              str(args.per_class)], capture_output=True, text=True, check=False)
        if res.returncode:
            print(res.stderr[-2000:], file=sys.stderr)
            return res.returncode
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = out[-1]
        print(f"{m:14s} fit {r['fit_s']:7.2f} s  encode {r['encode_s']:6.2f} s  "
              f"+{r['peak_added_mib']:7.1f} MiB  rel.err {r['relative_error']:.3f}  "
              f"R2 {r['r2']:.3f}  sparsity {r['sparsity']:.2f}  dead {r['dead_units']}",
              flush=True)
    path = RESULTS / "bench_discover.json"
    if args.update and path.is_file():
        old = {r["method"]: r for r in json.loads(path.read_text())["results"]}
        old.update({r["method"]: r for r in out})
        out = [old[m] for m in METHODS if m in old]
    fastest = min(r["fit_s"] for r in out)
    for r in out:
        r["fit_vs_fastest"] = round(r["fit_s"] / fastest, 1)
    RESULTS.mkdir(exist_ok=True)
    record = {"info": info, "cpu_count": os.cpu_count(), "results": out}
    path.write_text(json.dumps(record, indent=2) + "\n")
    write_docs(record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
