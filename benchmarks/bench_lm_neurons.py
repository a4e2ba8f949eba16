"""Decoding every MLP neuron of SmolLM2-135M through the final norm and the unembedding,
against the bare matrix products it needs, timed in the same run (interleaved, ABC ABC).

    .venv/bin/python benchmarks/bench_lm_neurons.py [--repeats 2] [--k 10] [--side up|gate|down]

A: ``decode_neurons`` on ``--side`` (the scaled weight vectors, the products, top-k per
neuron, the z-score from the closed-form mean and variance, assembling the map). B: only the 30
products ``(g * V) @ W_U^T`` with the scaled vectors precomputed, one per layer into a fresh
output, results discarded. C: the same products chunk by chunk into one reused buffer, the
least arithmetic the decoding can do (the ratio goal, 1.2x, is judged against the faster of B
and C). Also timed:
per neuron (to compare with the 15 minutes the Decoding paper reports for Llama-3.1-8B's
458,752 neurons), saving and loading the map, and word searches over the loaded map.

Writes benchmarks/results/bench_lm_neurons.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from conceptlab.lm.model import load_lm
from conceptlab.lm.neurons import (
    NeuronMap,
    decode_neurons,
    neuron_vectors,
    search,
    token_index,
)
from conceptlab.utils.io import write_json_atomic

RESULTS = Path(__file__).parent / "results"
WORDS = ["dog", "cat", "happy", "money", "France", "water", "music", "king", "red", "three",
         "computer", "love"]
PAPER_SECONDS, PAPER_NEURONS = 15 * 60, 32 * 14336  # Llama-3.1-8B: 32 layers x 14,336


def bare_products(Cs: list[torch.Tensor], Wt: torch.Tensor) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        for C in Cs:
            out = C @ Wt
            del out
    return time.perf_counter() - t0


def bare_buffered(Cs: list[torch.Tensor], Wt: torch.Tensor, chunk: int) -> float:
    buf = torch.empty((min(chunk, Cs[0].shape[0]), Wt.shape[1]))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for C in Cs:
            for s in range(0, C.shape[0], chunk):
                part = C[s:s + chunk]
                torch.matmul(part, Wt, out=buf[:part.shape[0]])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--side", default="up", choices=["up", "gate", "down"])
    args = ap.parse_args()
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    t0 = time.perf_counter()
    lm = load_lm(args.model)
    load_s = time.perf_counter() - t0
    W = lm.unembed_weight().float()
    Wt = W.T.contiguous()
    Cs = [neuron_vectors(lm, i, args.side) for i in range(lm.n_layers)]
    flops = 2.0 * lm.n_layers * lm.d_mlp * lm.d_model * lm.vocab_size
    decode_neurons(lm, layers=[0], k=args.k, chunk=args.chunk, side=args.side)  # warm-up
    bare_products(Cs[:1], Wt)
    bare_buffered(Cs[:1], Wt, args.chunk)
    full, bare, buffered = [], [], []
    nmap: NeuronMap | None = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        nmap = decode_neurons(lm, k=args.k, chunk=args.chunk, side=args.side)
        full.append(time.perf_counter() - t)
        bare.append(bare_products(Cs, Wt))
        buffered.append(bare_buffered(Cs, Wt, args.chunk))
        print(f"decode {full[-1]:.2f} s   bare products {bare[-1]:.2f} s   buffered "
              f"{buffered[-1]:.2f} s", flush=True)
    assert nmap is not None
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        nmap.save(Path(tmp) / "map")
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded = NeuronMap.load(Path(tmp) / "map")
        load_map_s = time.perf_counter() - t
    t = time.perf_counter()
    index = token_index(loaded)
    index_s = time.perf_counter() - t
    cold, warm, hits = [], [], {}
    for w in WORDS:
        t = time.perf_counter()
        res = search(loaded, w)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        search(loaded, w, token_index=index)
        warm.append(time.perf_counter() - t)
        hits[w] = res[:3]
    n = len(nmap)
    best_full, best_bare = min(full), min(min(bare), min(buffered))
    result: dict[str, Any] = {
        "model": lm.name, "n_layers": lm.n_layers, "d_mlp": lm.d_mlp, "vocab": lm.vocab_size,
        "n_neurons": n, "k": args.k, "chunk": args.chunk, "repeats": args.repeats,
        "side": args.side, "method": nmap.info["method"],
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "model_load_s": round(load_s, 3),
        "decode_s": [round(x, 3) for x in full], "bare_products_s": [round(x, 3) for x in bare],
        "bare_buffered_s": [round(x, 3) for x in buffered],
        "ratio_best": round(best_full / best_bare, 3),
        "ratio_median": round(statistics.median(full) / min(statistics.median(bare),
                                                            statistics.median(buffered)), 3),
        "gflops_bare": round(flops / best_bare / 1e9, 1),
        "per_neuron_us": round(best_full / n * 1e6, 2),
        "paper_per_neuron_us": round(PAPER_SECONDS / PAPER_NEURONS * 1e6, 1),
        "map_save_s": round(save_s, 3), "map_load_s": round(load_map_s, 3),
        "token_index_s": round(index_s, 3),
        "search_ms_median": round(statistics.median(cold) * 1e3, 2),
        "search_ms_max": round(max(cold) * 1e3, 2),
        "search_indexed_ms_max": round(max(warm) * 1e3, 2),
        "hits": hits,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "bench_lm_neurons.json" if args.side == "up" else f"bench_lm_neurons_{args.side}.json"
    write_json_atomic(RESULTS / name, result)
    rows = [(f"decode all neurons (best of {args.repeats})", f"{best_full:.2f} s"),
            ("bare products only (best of fresh / buffered)", f"{best_bare:.2f} s"),
            ("ratio decode / bare (best, median)",
             f"{result['ratio_best']:.3f}, {result['ratio_median']:.3f}"),
            ("GEMM rate of the bare products", f"{result['gflops_bare']} GFLOP/s"),
            ("per neuron (ours / Decoding paper, 8B)",
             f"{result['per_neuron_us']} us / {result['paper_per_neuron_us']} us"),
            ("map save / load", f"{save_s:.2f} s / {load_map_s:.2f} s"),
            ("word search, median / max (no index)",
             f"{result['search_ms_median']} / {result['search_ms_max']} ms"),
            ("word search with token index, max", f"{result['search_indexed_ms_max']} ms")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
