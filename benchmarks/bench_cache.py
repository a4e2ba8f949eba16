"""Benchmark of the activation cache: throughput overhead, warm-read speed-up, peak memory vs N.

Run: ``.venv/bin/python benchmarks/bench_cache.py [--quick]``. Prints a table and writes
``benchmarks/results/bench_cache.json`` (atomically) with the machine, settings and seed.

1. Throughput overhead. ``encode_split_views(encoder, split, cache)`` into an EMPTY cache (a
   fresh temporary folder per repeat) against a bare loop doing the same work without the
   cache: the same items loaded with ``split.items(...)``, the same batch size, the same
   ``encoder.encode_batch`` calls, the same final concatenation, in the same process and with
   the same ``torch.get_num_threads()``. The difference is the cache's own cost (key, shard
   concatenation, safetensors write, meta/marker files, the read-back in ``get_or_compute``).
   The two are interleaved in ABBA order (bare, cached, cached, bare, ...) so that drift in
   the load of a shared machine hits both alike; we report medians, the overhead
   ``median(cached) / median(bare) - 1`` and, more robust under noise, the median of the
   per-pair ratios. Because a difference of two noisy medians is coarse, the cache's parts are
   also timed on their own on the arrays already computed (key, ``write`` with a compute that
   only slices, ``load``): their sum over the bare median is the "direct" overhead estimate.
   A second (warm) run that finds the entry is timed as well and reported as a speed-up over
   the bare forward pass. One-off costs (hashing the weights and data files for the first key
   of a process) are reported apart: they are paid once per process, not per split.
   Default: 224 px, N=128 (real use: the model dominates) and 32 px, N=6144 (a cheap model,
   three shards: the worst case for the cache's relative cost). Threads: 1 by default
   (``--threads 0`` keeps torch's default). On a shared 2-core machine two OpenMP threads
   thrash whenever another process holds a core (seen at load ~10: 8-100 img/s at 32 px with
   2 threads, a steady ~500 with 1), which slows the model and hides the cache's share; one
   thread is the faster, steadier model and so the harder test of the overhead.

2. Peak memory vs N. Each (N, mode) runs in a fresh subprocess so that peaks never mix.
   Method: after the model, the data file and the cache key are warmed up (one batch encoded,
   key computed), the process's peak RSS is reset by writing ``5`` to
   ``/proc/self/clear_refs`` (Linux >= 4.0: VmHWM := VmRSS) and the baseline VmRSS is read;
   after the call VmHWM - baseline is the peak growth *during* the call, native (torch,
   safetensors, page-mapped files) and Python allocations alike. A cache subclass that only
   measures (it calls the real ``load``) snapshots VmHWM when ``get_or_compute`` finishes
   writing and resets it again, which splits the peak into the write phase (encode + write
   shards) and the load phase (read every shard back and concatenate). ``tracemalloc``
   peaks (numpy registers its buffers with it) give the Python/numpy share. If clear_refs is
   not writable the script falls back to ``ru_maxrss`` and says so (that can under-count).
   RSS growth does not see memory that the allocator reuses from pages already resident at
   the baseline (freed warm-up buffers), so for small N it can read below the tracemalloc
   figure; at thousands of rows (tens of MB) that slack is small against what is measured.
   Mode ``encode``: into an empty cache; mode ``read``: a warm hit on the entry that the
   ``encode`` child wrote. The returned views themselves are N x (1280 + 1000) float32
   (~9.1 KB a row) and must grow with N; what should not grow is the working memory beyond
   them, so the table shows both. The model runs at a small input size (default 32 px, one
   thread): the model's cost is not what is measured, only memory.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")  # no tqdm in either timed path

import numpy as np
import torch

from conceptlab.cache import ActivationCache
from conceptlab.data.base import DataSplit
from conceptlab.data.fashion_mnist import FashionMNIST
from conceptlab.data.splits import make_splits
from conceptlab.encoders.base import Encoder, build_encoder
from conceptlab.pipeline import EncodeStats, encode_split_views, split_cache_key
from conceptlab.utils.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_cache.json"
GOAL_OVERHEAD_PCT = 10.0
MB = 1024 * 1024


# --------------------------------------------------------------------------- helpers

def make_split(n: int, seed: int) -> DataSplit:
    """``n`` stratified items of Fashion-MNIST's official train split (val carved off first)."""
    return make_splits(FashionMNIST(), n_train=n, seed=seed).train


def make_encoder(image_size: int, batch_size: int) -> Encoder:
    return build_encoder("efficientnet", image_size=image_size, batch_size=batch_size)


def bare_encode(encoder: Encoder, split: DataSplit) -> dict[str, np.ndarray]:
    """What ``encode_split_views`` does minus the cache: load, encode, concatenate."""
    parts = []
    for b in range(0, len(split), encoder.batch_size):
        items = split.items(b, min(b + encoder.batch_size, len(split)))
        parts.append(encoder.encode_batch(items, split.modality))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in bytes."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss(method: str) -> int:
    if method == "clear_refs":
        return proc_status()["VmHWM"]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def machine_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_start": list(os.getloadavg()),
        "git_commit": commit,
    }


# --------------------------------------------------------------------------- throughput

def bench_throughput(image_size: int, n: int, args: argparse.Namespace,
                     tmp_root: Path) -> dict[str, Any]:
    split = make_split(n, args.seed)
    encoder = make_encoder(image_size, args.batch_size)

    # One-off per-process costs, reported apart: the first key hashes the weights file and the
    # dataset file; later keys hit the per-process digest caches.
    t_key_first, key = timed(lambda: split_cache_key(encoder, split))
    t_key_warm, _ = timed(lambda: split_cache_key(encoder, split))

    # Warm-up both paths on one batch (model load, allocator, safetensors/tqdm imports).
    warm_split = split.subset(np.arange(min(encoder.batch_size, n)), name="warmup")
    bare_encode(encoder, warm_split)
    with tempfile.TemporaryDirectory(dir=tmp_root) as d:
        encode_split_views(encoder, warm_split, ActivationCache(d))

    bare_s: list[float] = []
    cached_s: list[float] = []
    ref: dict[str, np.ndarray] | None = None
    cached_out: dict[str, np.ndarray] | None = None
    last_cache_dir: str | None = None
    for rep in range(args.repeats):
        order = ("bare", "cached") if rep % 2 == 0 else ("cached", "bare")
        for which in order:
            if which == "bare":
                dt, ref = timed(lambda: bare_encode(encoder, split))
                bare_s.append(dt)
            else:
                if last_cache_dir is not None:
                    shutil.rmtree(last_cache_dir, ignore_errors=True)
                last_cache_dir = tempfile.mkdtemp(prefix="cache-", dir=tmp_root)
                cache = ActivationCache(last_cache_dir)
                assert not cache.has(key), "cache must start empty"
                stats = EncodeStats()
                dt, cached_out = timed(
                    lambda c=cache, s=stats: encode_split_views(encoder, split, c, stats=s))
                assert not stats.from_cache
                cached_s.append(dt)
            print(f"  {image_size}px n={n} rep {rep + 1}/{args.repeats} {which}: {dt:.2f} s",
                  file=sys.stderr, flush=True)
    assert ref is not None and cached_out is not None and last_cache_dir is not None
    max_diff = max(float(np.max(np.abs(ref[k] - cached_out[k]))) for k in ref)

    warm_s = []
    cache = ActivationCache(last_cache_dir)
    for _ in range(args.repeats):
        stats = EncodeStats()
        dt, warm_out = timed(lambda s=stats: encode_split_views(encoder, split, cache, stats=s))
        assert stats.from_cache
        warm_s.append(dt)
    warm_equal = all(np.array_equal(warm_out[k], cached_out[k]) for k in cached_out)

    # The cache's own parts, timed alone on the computed arrays (no model): write + load.
    part_write, part_load = [], []
    for _ in range(args.repeats):
        d = tempfile.mkdtemp(prefix="parts-", dir=tmp_root)
        try:
            c = ActivationCache(d)
            dt_w, _ = timed(lambda c=c: c.write(
                key, n, lambda a, b: {k: v[a:b] for k, v in ref.items()}))
            dt_l, _ = timed(lambda c=c: c.load(key))
            part_write.append(dt_w)
            part_load.append(dt_l)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(last_cache_dir, ignore_errors=True)

    bare_med, cached_med, warm_med = (statistics.median(x) for x in (bare_s, cached_s, warm_s))
    paired = [c / b - 1 for b, c in zip(bare_s, cached_s, strict=True)]
    parts = {"key_warm": t_key_warm, "write": statistics.median(part_write),
             "load": statistics.median(part_load)}
    overhead_pct = 100 * (cached_med / bare_med - 1)
    return {
        "image_size": image_size, "n": n, "batch_size": encoder.batch_size,
        "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
        "order": "ABBA (bare, cached, cached, bare, ...)",
        "shard_rows": ActivationCache(tmp_root).shard_rows,
        "bare_s": bare_s, "cached_s": cached_s, "warm_s": warm_s,
        "bare_median_s": bare_med, "cached_median_s": cached_med, "warm_median_s": warm_med,
        "bare_items_per_s": n / bare_med,
        "overhead_pct": overhead_pct,
        "overhead_pct_paired_median": 100 * statistics.median(paired),
        "overhead_pct_paired": [100 * p for p in paired],
        "cache_parts_median_s": parts,
        "direct_overhead_pct": 100 * sum(parts.values()) / bare_med,
        "one_off_first_key_s": t_key_first,
        "warm_speedup": bare_med / warm_med,
        "max_abs_diff_cached_vs_bare": max_diff,
        "warm_equals_cold": warm_equal,
        "goal_overhead_pct": GOAL_OVERHEAD_PCT,
        "meets_goal": overhead_pct < GOAL_OVERHEAD_PCT,
    }


# --------------------------------------------------------------------------- memory (child)

class _MeasuredCache(ActivationCache):
    """Measures only: at the start of ``load`` it records the write-phase peak and resets it."""

    probe: dict[str, Any]

    def load(self, key: Any, views: list[str] | None = None) -> dict[str, np.ndarray]:
        p = self.probe
        p["hwm_before_load"] = peak_rss(p["method"])
        p["tm_peak_write"] = tracemalloc.get_traced_memory()[1]
        if p["method"] == "clear_refs":
            reset_peak_rss()
        p["rss_before_load"] = proc_status()["VmRSS"]
        p["tm_before_load"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return super().load(key, views)


def memory_child(cfg: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(cfg["threads"])
    split = make_split(cfg["n"], cfg["seed"])
    encoder = make_encoder(cfg["image_size"], cfg["batch_size"])
    split_cache_key(encoder, split)  # hash the files now, not during the measured call
    bare_encode(encoder, split.subset(np.arange(min(encoder.batch_size, cfg["n"])),
                                      name="warmup"))
    gc.collect()
    method = "clear_refs" if reset_peak_rss() else "ru_maxrss"
    base = proc_status()["VmRSS"]
    cache = _MeasuredCache(cfg["cache_dir"])
    cache.probe = {"method": method}
    tracemalloc.start()
    stats = EncodeStats()
    t0 = time.perf_counter()
    out = encode_split_views(encoder, split, cache, stats=stats)
    seconds = time.perf_counter() - t0
    hwm_end = peak_rss(method)
    tm_cur, tm_peak_load = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    p = cache.probe
    if stats.from_cache != (cfg["mode"] == "read"):
        raise RuntimeError(f"mode {cfg['mode']} but from_cache={stats.from_cache}")
    result = sum(a.nbytes for a in out.values())
    row: dict[str, Any] = {
        "n": cfg["n"], "mode": cfg["mode"], "method": method, "seconds": seconds,
        "rows": len(next(iter(out.values()))), "result_mb": result / MB,
        "baseline_rss_mb": base / MB,
        "load_growth_mb": (hwm_end - p["rss_before_load"]) / MB,
        "tracemalloc_load_peak_mb": (tm_peak_load - p["tm_before_load"]) / MB,
        "tracemalloc_end_mb": tm_cur / MB,
    }
    if cfg["mode"] == "encode":
        row["write_growth_mb"] = (p["hwm_before_load"] - base) / MB
        row["tracemalloc_write_peak_mb"] = p["tm_peak_write"] / MB
        row["peak_growth_mb"] = (max(p["hwm_before_load"], hwm_end) - base) / MB
    else:
        row["write_growth_mb"] = None
        row["tracemalloc_write_peak_mb"] = None
        row["peak_growth_mb"] = (hwm_end - base) / MB
    row["peak_beyond_result_mb"] = row["peak_growth_mb"] - row["result_mb"]
    return row


def bench_memory(args: argparse.Namespace, tmp_root: Path) -> dict[str, Any]:
    runs = []
    for n in args.sizes:
        cache_dir = tempfile.mkdtemp(prefix=f"mem-{n}-", dir=tmp_root)
        try:
            for mode in ("encode", "read"):
                cfg = {"n": n, "mode": mode, "seed": args.seed, "cache_dir": cache_dir,
                       "image_size": args.memory_image_size, "batch_size": args.batch_size,
                       "threads": args.memory_threads}
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "--_child", json.dumps(cfg)],
                                      capture_output=True, text=True, check=False,
                                      env={**os.environ, "CONCEPTLAB_NO_PROGRESS": "1"})
                if proc.returncode != 0:
                    raise RuntimeError(f"memory child {cfg} failed:\n{proc.stderr[-3000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["child_wall_s"] = time.perf_counter() - t0
                runs.append(row)
                print(f"  memory n={n} {mode}: peak +{row['peak_growth_mb']:.0f} MB "
                      f"({row['seconds']:.1f} s)", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return {"image_size": args.memory_image_size, "torch_threads": args.memory_threads,
            "batch_size": args.batch_size, "sizes": args.sizes, "runs": runs,
            "note": (f"EfficientNet-Lite0 at {args.memory_image_size} px: the model's cost is "
                     "not what is measured, only memory; views are features (1280) + logits "
                     "(1000) float32 per row")}


# --------------------------------------------------------------------------- report

def render(results: dict[str, Any]) -> None:
    tp_head = ["px", "N", "bare s", "cached s", "overhead", "paired (min..max)", "direct",
               "warm ms", "warm speed-up", "img/s"]
    tp_rows = [[str(r["image_size"]), str(r["n"]), f"{r['bare_median_s']:.2f}",
                f"{r['cached_median_s']:.2f}", f"{r['overhead_pct']:+.1f}%",
                f"{r['overhead_pct_paired_median']:+.1f}% ({min(r['overhead_pct_paired']):+.0f}"
                f"..{max(r['overhead_pct_paired']):+.0f})", f"{r['direct_overhead_pct']:+.1f}%",
                f"{1000 * r['warm_median_s']:.1f}", f"{r['warm_speedup']:.0f}x",
                f"{r['bare_items_per_s']:.0f}"] for r in results["throughput"]]
    mem = results["memory"]
    mem_head = ["N", "mode", "result MB", "peak +MB", "write +MB", "load +MB*",
                "beyond result MB", "tracemalloc peak MB (write/load)"]

    def opt(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    mem_rows = [[str(r["n"]), r["mode"], f"{r['result_mb']:.0f}", f"{r['peak_growth_mb']:.0f}",
                 opt(r["write_growth_mb"]), f"{r['load_growth_mb']:.0f}",
                 f"{r['peak_beyond_result_mb']:.0f}",
                 f"{opt(r['tracemalloc_write_peak_mb'])}/{r['tracemalloc_load_peak_mb']:.0f}"]
                for r in mem["runs"]]
    m = results["machine"]
    tp_title = (f"Cache throughput overhead (median of {results['settings']['repeats']}, "
                f"ABBA; torch threads {m['torch_threads']}, {m['cpus_usable']} cores, "
                f"goal < {GOAL_OVERHEAD_PCT:.0f}%)")
    mem_title = (f"Peak RSS growth during encode_split_views (fresh process each; model at "
                 f"{mem['image_size']} px, not what is measured; *from RSS at load start)")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        for title, head, rows in ((tp_title, tp_head, tp_rows), (mem_title, mem_head, mem_rows)):
            print(title)
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
            for line in [head, *rows]:
                print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
            print()
        return
    console = Console(width=140)
    for title, head, rows in ((tp_title, tp_head, tp_rows), (mem_title, mem_head, mem_rows)):
        table = Table(title=title)
        for h in head:
            table.add_column(h, justify="right")
        for r in rows:
            table.add_row(*r)
        console.print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (< 1 min)")
    ap.add_argument("--throughput", nargs="+", default=None, metavar="PX:N",
                    help="throughput configs as image_size:N (default 224:128 32:6144)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="repeats of each path (>= 3; default 5, --quick 3)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="N for the memory part (default 5000 20000)")
    ap.add_argument("--memory-image-size", type=int, default=32)
    ap.add_argument("--memory-threads", type=int, default=1,
                    help="torch threads in the memory children (speed only)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the throughput part (0 = torch's default)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tmp-dir", type=Path, default=None, help="where temporary caches go")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.throughput is None:
        args.throughput = ["32:512"] if args.quick else ["224:128", "32:6144"]
    args.throughput = [tuple(int(v) for v in s.split(":")) for s in args.throughput]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 3:
        ap.error("--repeats must be >= 3")
    if args.sizes is None:
        args.sizes = [500, 2000] if args.quick else [5000, 20000]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child is not None:
        print(json.dumps(memory_child(json.loads(args._child))))
        return 0
    default_threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    machine = machine_info()
    machine["torch_default_threads"] = default_threads
    settings = {"quick": args.quick, "throughput": [{"image_size": s, "n": n}
                                                    for s, n in args.throughput],
                "repeats": args.repeats, "memory_sizes": args.sizes,
                "memory_image_size": args.memory_image_size,
                "memory_threads": args.memory_threads, "batch_size": args.batch_size,
                "dataset": "fashion-mnist (official train, stratified subsample)",
                "encoder": "efficientnet (Lite0, packaged ImageNet weights)",
                "progress_bars": "off (CONCEPTLAB_NO_PROGRESS=1)"}
    with contextlib.ExitStack() as stack:
        tmp_root = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="bench-cache-", dir=args.tmp_dir)))
        print("throughput ...", file=sys.stderr, flush=True)
        throughput = [bench_throughput(s, n, args, tmp_root) for s, n in args.throughput]
        print("memory ...", file=sys.stderr, flush=True)
        memory = bench_memory(args, tmp_root)
    machine["load_average_end"] = list(os.getloadavg())
    enc = {r["n"]: r for r in memory["runs"] if r["mode"] == "encode"}
    lo, hi = min(enc), max(enc)

    def ratio(field: str) -> float:
        den = enc[lo][field]
        return enc[hi][field] / den if den > 0 else float("nan")

    memory["summary"] = {
        "n_small": lo, "n_large": hi, "n_ratio": hi / lo,
        "peak_growth_ratio": ratio("peak_growth_mb"),
        "write_growth_ratio": ratio("write_growth_mb"),
        "load_growth_ratio": ratio("load_growth_mb"),
        "peak_beyond_result_ratio": ratio("peak_beyond_result_mb"),
    }
    results = {"benchmark": "bench_cache", "command": " ".join([sys.executable, *sys.argv]),
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": args.seed,
               "machine": machine, "settings": settings, "throughput": throughput,
               "memory": memory, "wall_s": time.perf_counter() - t_start}
    render(results)
    s = memory["summary"]
    print(f"memory {lo} -> {hi} items ({s['n_ratio']:.0f}x): end-to-end peak x"
          f"{s['peak_growth_ratio']:.2f}, write phase x{s['write_growth_ratio']:.2f}, "
          f"beyond the returned arrays x{s['peak_beyond_result_ratio']:.2f}")
    write_json_atomic(args.out, results)
    print(f"wrote {args.out} ({results['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
