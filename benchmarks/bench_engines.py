"""Ray Data engine vs the local loop on the same cores, start-up included.

Encodes the first N Fashion-MNIST training images with EfficientNet-Lite0 (features + logits,
the cached stage of ``conse``; ONNX backend, 224 px) into two fresh caches: once with the
local engine (one process, ``--cpus`` threads), once with the Ray engine on a local Ray of
``--cpus`` CPUs (``--cpus`` actors of one thread each). The Ray time includes ``ray.init``,
actor start-up (each actor builds its encoder) and shutdown; the local time includes
building the encoder. The ONNX graph is exported once beforehand for both. The two entries
are then compared array by array (they must be identical).

Usage: python benchmarks/bench_engines.py [--n 10000] [--cpus 2] [--image-size 224]
Writes benchmarks/results/bench_engines.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["CONCEPTLAB_NO_PROGRESS"] = "1"

import numpy as np
import torch

from conceptlab.cache import ActivationCache
from conceptlab.data.base import build_dataset
from conceptlab.encoders.base import build_encoder
from conceptlab.engines.ray_engine import RayEngine
from conceptlab.pipeline import EncodeStats, ensure_encoded, split_cache_key
from conceptlab.utils.io import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "bench_engines.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=224)
    args = ap.parse_args()
    split = build_dataset("fashion-mnist").official_split("train")
    split = split.subset(np.arange(args.n), name=f"first{args.n}")
    opts = {"image_size": args.image_size, "backend": "onnx"}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONCEPTLAB_ONNX_DIR"] = f"{tmp}/onnx"
        build_encoder("efficientnet", **opts).onnx_path()  # type: ignore[attr-defined]

        torch.set_num_threads(args.cpus)
        t0 = time.perf_counter()
        enc = build_encoder("efficientnet", **opts)
        local_cache = ActivationCache(f"{tmp}/local")
        stats = EncodeStats()
        ensure_encoded(enc, split, local_cache, stats=stats)
        local_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        enc2 = build_encoder("efficientnet", **opts)
        engine = RayEngine("efficientnet", opts, local_cpus=args.cpus, concurrency=args.cpus,
                           num_cpus=1)
        ray_cache = ActivationCache(f"{tmp}/ray")
        try:
            ensure_encoded(enc2, split, ray_cache, engine=engine)
        finally:
            engine.close()
        ray_s = time.perf_counter() - t0

        key = split_cache_key(enc, split)
        a, b = local_cache.load(key), ray_cache.load(key)
        identical = all(np.array_equal(a[v], b[v]) for v in a) and sorted(a) == sorted(b)
    ratio = ray_s / local_s
    print(f"{args.n} images at {args.image_size} px, {args.cpus} CPUs, onnx backend")
    print(f"{'engine':8} {'seconds':>8} {'images/s':>9}")
    print(f"{'local':8} {local_s:8.1f} {args.n / local_s:9.1f}")
    print(f"{'ray':8} {ray_s:8.1f} {args.n / ray_s:9.1f}")
    print(f"ray / local = {ratio:.2f}x; entries identical: {identical}")
    write_json_atomic(RESULTS, {
        "n": args.n, "cpus": args.cpus, "image_size": args.image_size, "backend": "onnx",
        "local_seconds": local_s, "ray_seconds": ray_s, "ray_over_local": ratio,
        "identical": identical,
        "command": "python benchmarks/bench_engines.py " + " ".join(sys.argv[1:])})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
