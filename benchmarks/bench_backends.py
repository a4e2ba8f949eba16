"""Torch vs ONNX Runtime for the packaged encoders, side by side in one run.

EfficientNet-Lite0 at 224 px on real Fashion-MNIST images (batch 32) and MiniLM on real
sentences (concept and class-name texts, batch 64), same batch and thread count for every
backend: images/s and sentences/s, the max abs difference of the outputs, and the achieved
GFLOP/s (FLOPs counted from the network's layer shapes) beside a dense fp32 GEMM measured in
the same run, so the reader sees how far each backend is from the machine's peak.

Rows: ``torch eager`` is the network as before this change (BatchNorm as separate ops);
``torch (BN folded)`` is today's torch backend; ``onnx`` is today's default. The network
rows time the forward pass on preprocessed batches; ``encode_batch`` rows time the
encoder end to end (PIL preprocessing included).

``--demo``: also times the main job (``conceptlab demo``) from a fresh activation cache and a
fresh ONNX export folder, once per backend (``CONCEPTLAB_BACKEND``), in subprocesses.

Usage: python benchmarks/bench_backends.py [--threads 2] [--reps 5] [--demo]
Writes benchmarks/results/bench_backends.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

from conceptlab.encoders.efficientnet import (
    EfficientNetEncoder,
    _FeaturesAndLogits,
    fold_batchnorm,
    load_efficientnet_lite0,
)
from conceptlab.encoders.onnx_backend import OrtSession
from conceptlab.encoders.sentence import SentenceEncoder, minilm_path
from conceptlab.utils.io import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "bench_backends.json"


def best_seconds(fn: Any, reps: int) -> float:
    """Median of ``reps`` timed calls after one warm-up (the machine is shared)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def conv_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every Conv2d and Linear in one forward pass of ``x``."""
    total = [0.0]

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            total[0] += 2.0 * out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


def gemm_gflops(threads: int, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.set_num_threads(threads)
    sec = best_seconds(lambda: torch.mm(a, b), reps)
    return 2.0 * n ** 3 / sec / 1e9


def fashion_images(n: int) -> list[Any]:
    from conceptlab.data.base import build_dataset

    split = build_dataset("fashion-mnist").official_split("test")
    return split.items(0, n)


def bench_efficientnet(threads: int, reps: int, batch: int, onnx_dir: Path
                       ) -> list[dict[str, Any]]:
    images = fashion_images(batch)
    enc_t = EfficientNetEncoder(image_size=224, batch_size=batch, backend="torch")
    enc_o = EfficientNetEncoder(image_size=224, batch_size=batch, backend="onnx")
    x = enc_t.preprocess(images)
    eager = _FeaturesAndLogits(load_efficientnet_lite0()).eval()
    folded = _FeaturesAndLogits(fold_batchnorm(load_efficientnet_lite0())).eval()
    t0 = time.perf_counter()
    path = enc_o.onnx_path()
    export_s = time.perf_counter() - t0
    sess = OrtSession(path, threads=threads)
    x_np = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy().transpose(0, 3, 1, 2))
    flops = conv_flops(eager.model, x[:1]) * batch
    with torch.inference_mode():
        ref = eager(x)[0].numpy()
        ref_logits = eager(x)[1].numpy()

    def run_eager() -> Any:
        with torch.inference_mode():
            return eager(x)

    def run_folded() -> Any:
        with torch.inference_mode():
            return folded(x)

    rows = []
    for name, fn, out in [
        ("torch eager (before)", run_eager, lambda: ref),
        ("torch (BN folded)", run_folded, lambda: run_folded()[0].numpy()),
        ("onnx", lambda: sess.run({"images": x_np}),
         lambda: sess.run({"images": x_np})["features"]),
    ]:
        sec = best_seconds(fn, reps)
        rows.append({"model": "efficientnet-lite0@224", "what": "network", "backend": name,
                     "batch": batch, "items_per_s": batch / sec, "gflops": flops / sec / 1e9,
                     "max_abs_diff": float(np.abs(out() - ref).max())})
    logits_o = sess.run({"images": x_np})["logits"]
    rows[-1]["max_abs_diff_logits"] = float(np.abs(logits_o - ref_logits).max())
    for enc in (enc_t, enc_o):
        sec = best_seconds(lambda e=enc: e.encode_batch(images, "image"), reps)
        feats = enc.encode_batch(images, "image")["features"]
        rows.append({"model": "efficientnet-lite0@224", "what": "encode_batch",
                     "backend": enc.backend, "batch": batch, "items_per_s": batch / sec,
                     "gflops": flops / sec / 1e9,
                     "max_abs_diff": float(np.abs(feats - ref).max())})
    rows[0]["export_seconds"] = export_s
    rows[0]["gflop_per_item"] = flops / batch / 1e9
    return rows


def sentences(n: int) -> list[str]:
    from conceptlab.encoders.efficientnet import imagenet_class_names

    names = imagenet_class_names()
    out = [f"a photo of a {c}, seen from the side in good light" if i % 3 == 0 else c
           for i, c in enumerate(names)]
    return out[:n]


def bench_minilm(threads: int, reps: int, batch: int, n: int) -> list[dict[str, Any]]:
    texts = sentences(n)
    enc_t = SentenceEncoder(minilm_path(), spec="minilm", offline=True, batch_size=batch,
                            backend="torch")
    enc_o = SentenceEncoder(minilm_path(), spec="minilm", offline=True, batch_size=batch,
                            backend="onnx")
    enc_o.onnx_path()
    ref = enc_t.encode_batch(texts, "text")["embedding"]
    # FLOPs: the Linear layers per real token + attention (QK^T and AV) per padded batch
    model = enc_t.model
    tok = model.preprocess(texts)
    n_tokens = int(tok["attention_mask"].sum())
    lin = sum(2.0 * m.in_features * m.out_features
              for m in model[0].auto_model.modules() if isinstance(m, nn.Linear))
    cfg = model[0].auto_model.config
    lens = tok["attention_mask"].sum(1).double()
    attn = float(4.0 * cfg.num_hidden_layers * cfg.hidden_size * (lens ** 2).sum())
    flops = lin * n_tokens + attn
    rows = []
    for enc in (enc_t, enc_o):
        torch.set_num_threads(threads)
        sec = best_seconds(lambda e=enc: e.encode_batch(texts, "text"), reps)
        emb = enc.encode_batch(texts, "text")["embedding"]
        rows.append({"model": "all-MiniLM-L6-v2", "what": "encode_batch",
                     "backend": enc.backend_id(), "batch": batch, "items_per_s": n / sec,
                     "gflops": flops / sec / 1e9,
                     "max_abs_diff": float(np.abs(emb - ref).max())})
    return rows


def bench_demo(threads: int) -> list[dict[str, Any]]:
    """``conceptlab demo`` from a fresh cache and export folder, once per backend."""
    rows = []
    for backend in ("torch", "onnx"):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "CONCEPTLAB_CACHE": f"{tmp}/cache",
                   "CONCEPTLAB_ONNX_DIR": f"{tmp}/onnx", "CONCEPTLAB_BACKEND": backend,
                   "CONCEPTLAB_NO_PROGRESS": "1", "OMP_NUM_THREADS": str(threads)}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "conceptlab", "demo", "--out",
                                   f"{tmp}/demo"], env=env, capture_output=True, text=True)
            sec = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"demo ({backend}) failed:\n{proc.stderr[-2000:]}")
            import json

            metrics = json.loads(Path(f"{tmp}/demo/metrics.json").read_text())
        enc_s = sum(s.get("seconds", 0.0) for s in metrics["encoding"].values())
        rows.append({"backend": backend, "wall_seconds": sec, "encode_seconds": enc_s,
                     "accuracy": metrics["accuracy"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--demo", action="store_true", help="also time `conceptlab demo` per backend")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONCEPTLAB_ONNX_DIR"] = tmp
        gemm = gemm_gflops(args.threads)
        rows = bench_efficientnet(args.threads, args.reps, args.batch, Path(tmp))
        rows += bench_minilm(args.threads, args.reps, 64, args.sentences)
        gemm_after = gemm_gflops(args.threads)
    try:
        demo = bench_demo(args.threads) if args.demo else []
    except RuntimeError as err:
        print(err, file=sys.stderr)
        demo = []
    print(f"fp32 GEMM 2048^3, {args.threads} threads: {gemm:.1f} GFLOP/s before, "
          f"{gemm_after:.1f} after")
    print(f"{'model':24} {'what':13} {'backend':22} {'items/s':>9} {'GFLOP/s':>8} "
          f"{'max|diff|':>10}")
    for r in rows:
        print(f"{r['model']:24} {r['what']:13} {r['backend']:22} {r['items_per_s']:9.1f} "
              f"{r['gflops']:8.1f} {r['max_abs_diff']:10.2e}")
    eff = {r["backend"]: r["items_per_s"] for r in rows if r["what"] == "network"}
    ratios = {"onnx_vs_torch_eager": eff["onnx"] / eff["torch eager (before)"],
              "onnx_vs_torch_folded": eff["onnx"] / eff["torch (BN folded)"],
              "folded_vs_eager": eff["torch (BN folded)"] / eff["torch eager (before)"]}
    st = {r["backend"]: r["items_per_s"] for r in rows if r["model"] == "all-MiniLM-L6-v2"}
    ratios["minilm_onnx_vs_torch"] = st["onnx-v1"] / st["torch"]
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    for d in demo:
        print(f"demo, fresh cache, {d['backend']}: {d['wall_seconds']:.1f} s wall "
              f"({d['encode_seconds']:.1f} s encoding), accuracy {d['accuracy']:.3f}")
    if len(demo) == 2:
        ratios["demo_first_run_torch_over_onnx"] = demo[0]["wall_seconds"] / demo[1]["wall_seconds"]
        print(f"demo first run: torch / onnx = {ratios['demo_first_run_torch_over_onnx']:.2f}x")
    write_json_atomic(RESULTS, {
        "threads": args.threads, "reps": args.reps, "gemm_gflops": [gemm, gemm_after],
        "rows": rows, "ratios": ratios, "demo": demo,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__,
                    "onnxruntime": __import__("onnxruntime").__version__},
        "command": "python benchmarks/bench_backends.py " + " ".join(sys.argv[1:])})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
