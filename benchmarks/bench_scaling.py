"""Cost as work grows: fit time and peak memory against N, and encode peak memory against N.

Fits, on synthetic rows at 384-d (the MiniLM / ConSE embedding size) with 10 classes and a
random bank of K unit concept directions (K = 66, the Fashion-MNIST vocabulary size, and
500): the dense head and the NEC head (``fit_dense_head`` / ``fit_sparse_head`` on concept
scores ``X @ bank.T``, NEC = 5) and every CBL objective through the public model
(``ConceptBottleneckModel.from_options(bank, classes, method=...)``, dense final layer).
Data: 10 class prototypes in a 32-d latent space plus noise, projected to 384-d; validation
is 10% of N (at most 20,000 rows), carved apart. Each fit runs in its own subprocess, so its peak
resident memory (``ru_maxrss``) is its own; data generation is included in the memory but
not in the time.

Epoch caps (said in the table): CBL objectives run at most ``--cbl-epochs`` epochs per size
(default 20 at 10k, 5 at 100k, 1 at 1M, no sparse fine-tuning at 1M): on this 2-core machine
an uncapped 1M-row CBL fit would take tens of minutes per objective.

Encode memory: ``ensure_encoded`` of N synthetic texts through a fast stand-in encoder
(384-d view, no network) into a fresh cache, so the number is the pipeline's own memory
(item keys, shard buffers), which must stay flat as N grows.

Usage: python benchmarks/bench_scaling.py [--sizes 10000 100000 1000000] [--concepts 66 500]
       [--methods dense nec l1 ...] [--append] [--timeout S]
Writes benchmarks/results/bench_scaling.json, benchmarks/results/bench_scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["dense", "nec", "l1", "contrastive", "gumbel", "cos3", "supervised"]
D, C, LATENT = 384, 10, 32


def cbl_epochs(n: int, default: int | None) -> int:
    if default is not None:
        return default
    return 20 if n <= 10_000 else 5 if n <= 100_000 else 1


def make_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(C, LATENT)).astype(np.float32)
    proj = (rng.normal(size=(LATENT, D)) / np.sqrt(LATENT)).astype(np.float32)
    y = rng.integers(0, C, n)
    X = np.empty((n, D), dtype=np.float32)
    for s in range(0, n, 100_000):  # chunked: no float64 N x 384 temporary
        e = min(s + 100_000, n)
        h = protos[y[s:e]] + 1.6 * rng.normal(size=(e - s, LATENT)).astype(np.float32)
        X[s:e] = h @ proj + 0.5 * rng.normal(size=(e - s, D)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


def one_fit(n: int, k: int, method: str, epochs: int | None) -> dict[str, Any]:
    import torch

    from conceptlab.bottleneck.heads import fit_dense_head, fit_sparse_head
    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from conceptlab.concepts.bank import ConceptBank

    torch.manual_seed(0)
    n_val = min(n // 10, 20_000)
    X, y = make_rows(n + n_val, seed=0)
    Xt, yt, Xv, yv = X[:n], y[:n], X[n:], y[n:]
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(k, D)).astype(np.float32)
    bank = ConceptBank(vectors=vectors, names=[f"c{i}" for i in range(k)],
                       provenance={"encoder": "synthetic"})
    classes = [f"class{i}" for i in range(C)]
    cap = cbl_epochs(n, epochs)
    note = ""
    t0 = time.perf_counter()
    if method in ("dense", "nec"):
        B = bank.vectors.T
        Zt, Zv = Xt @ B, Xv @ B
        t0 = time.perf_counter()
        if method == "dense":
            head = fit_dense_head(Zt, yt, Zv, yv, n_classes=C)
        else:
            head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=5)
        acc = float((head.predict(Zv) == yv).mean()) if hasattr(head, "predict") else None
    else:
        hp: dict[str, Any] = {"max_epochs": cap, "show_progress": False}
        if n >= 1_000_000:
            hp["finetune_epochs"] = 0
        model = ConceptBottleneckModel.from_options(bank, classes, method=method, nec=None,
                                                    options=hp)
        labels = None
        if method == "supervised":
            labels = (Xt @ bank.vectors.T > 0.05).astype(np.float32)
        model.fit(Xt, yt, Xv, yv, concept_labels=labels)
        acc = float((model.predict(Xv) == yv).mean())
        note = f"max_epochs={cap}" + (", finetune_epochs=0" if n >= 1_000_000 else "")
    sec = time.perf_counter() - t0
    return {"seconds": sec, "val_accuracy": acc, "note": note}


def one_encode(n: int) -> dict[str, Any]:
    from collections.abc import Sequence

    from conceptlab.cache import ActivationCache
    from conceptlab.data.base import DataSplit, ItemSource
    from conceptlab.encoders.base import Encoder, Modality, Views
    from conceptlab.pipeline import ensure_encoded
    from conceptlab.utils.hashing import hash_json

    class Texts(ItemSource):
        def __len__(self) -> int:
            return n

        def load(self, index: int) -> str:
            return f"synthetic text number {index}"

        def fingerprint(self) -> str:
            return hash_json({"synthetic": n})

    class Fast(Encoder):
        modalities = frozenset({"text"})
        batch_size = 256
        spec = "fast"

        @property
        def dim(self) -> int:
            return D

        def fingerprint(self) -> str:
            return "fast-v1"

        def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
            seeds = np.array([len(t) for t in items], dtype=np.float32)
            return {"embedding": np.repeat(seeds[:, None], D, axis=1)}

    split = DataSplit(dataset="synthetic", name="train", modality="text", source=Texts(),
                      indices=np.arange(n), labels=np.zeros(n, dtype=np.int64),
                      class_names=["a"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ensure_encoded(Fast(), split, ActivationCache(tmp))
        return {"seconds": time.perf_counter() - t0, "val_accuracy": None, "note": ""}


def child(args: argparse.Namespace) -> None:
    os.environ["CONCEPTLAB_NO_PROGRESS"] = "1"
    n, k, method = args.one
    if method == "encode":
        out = one_encode(int(n))
    else:
        out = one_fit(int(n), int(k), method, args.cbl_epochs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def run_child(n: int, k: int, method: str, cbl: int | None, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(n), str(k), method]
    if cbl is not None:
        cmd += ["--cbl-epochs", str(cbl)]
    row: dict[str, Any] = {"n": n, "concepts": k, "method": method}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "seconds": None, "peak_rss_mb": None, "note": f"timeout {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {**row, "seconds": None, "peak_rss_mb": None,
                "note": "failed: " + proc.stderr.strip().splitlines()[-1][:120]}
    return {**row, **json.loads(lines[-1][len("RESULT "):])}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    fits = [r for r in rows if r["method"] != "encode" and r["seconds"] is not None]
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(METHODS)}
    k_min = min((r["concepts"] for r in fits), default=0)
    for method, k in sorted({(r["method"], r["concepts"]) for r in fits}):
        sel = sorted((r for r in fits if (r["method"], r["concepts"]) == (method, k)),
                     key=lambda r: r["n"])
        style = {"color": colours.get(method), "ls": "-" if k == k_min else "--",
                 "marker": "o" if k == k_min else "^", "label": f"{method}, K={k}"}
        axes[0].plot([r["n"] for r in sel], [r["seconds"] for r in sel], **style)
        axes[1].plot([r["n"] for r in sel], [r["peak_rss_mb"] for r in sel], **style)
    enc = sorted((r for r in rows if r["method"] == "encode" and r["peak_rss_mb"]),
                 key=lambda r: r["n"])
    if enc:
        axes[1].plot([r["n"] for r in enc], [r["peak_rss_mb"] for r in enc], "k:", marker="s",
                     label="encode (pipeline)")
    for ax, title in zip(axes, ["fit time (s)", "peak memory (MB)"], strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training rows N (384-d)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle("conceptlab: cost against N (2 CPU cores; CBL epochs capped at large N)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--concepts", type=int, nargs="+", default=[66, 500])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--cbl-epochs", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--no-encode", action="store_true")
    ap.add_argument("--append", action="store_true",
                    help="add to the rows of an earlier run's JSON (other sizes or methods)")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        child(args)
        return
    rows: list[dict[str, Any]] = []
    commands = ["python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:])]
    if args.append and (RESULTS / "bench_scaling.json").is_file():
        old = json.loads((RESULTS / "bench_scaling.json").read_text())
        rows, commands = old["rows"], [*old["commands"], *commands]
    for n in args.sizes:
        if not args.no_encode:
            rows.append(run_child(n, 0, "encode", None, args.timeout))
        for k in args.concepts:
            for method in args.methods:
                rows.append(run_child(n, k, method, args.cbl_epochs, args.timeout))
                r = rows[-1]
                sec = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
                print(f"N={n:>9} K={k:>4} {method:12} {sec:>8} s "
                      f"{r.get('peak_rss_mb') or 0:8.0f} MB  {r.get('note', '')}", flush=True)
        enc = [r for r in rows if r["method"] == "encode" and r["n"] == n]
        if enc:
            print(f"N={n:>9} encode pipeline peak {enc[0].get('peak_rss_mb') or 0:.0f} MB "
                  f"{enc[0].get('note', '')}", flush=True)
    from conceptlab.utils.io import write_json_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "bench_scaling.json", {
        "rows": rows, "dim": D, "classes": C, "commands": commands})
    plot(rows, RESULTS / "bench_scaling.png")
    print(f"wrote {RESULTS / 'bench_scaling.json'} and bench_scaling.png")


if __name__ == "__main__":
    main()
