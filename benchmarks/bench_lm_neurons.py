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

Writes benchmarks/results/bench_lm_neurons.json and, for ``--side up``, the
``<!-- lm-neurons:start/end -->`` block of docs/benchmarks.md (table and words from the JSON,
``docs_block``); ``--docs-only`` rewrites that block from the saved JSON.
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
from conceptlab.utils.docblocks import markers, splice_file
from conceptlab.utils.io import read_json, write_json_atomic

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = markers("lm-neurons")
#: the goals: decoding within RATIO_GOAL x the bare products, a word search under SEARCH_GOAL_MS
RATIO_GOAL, SEARCH_GOAL_MS = 1.2, 100.0
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


def docs_block(r: dict[str, Any]) -> str:
    """The table and the sentences of docs/benchmarks.md's section, from ``r`` (the JSON)."""
    runs = ", ".join(f"{x:.1f}" for x in r["decode_s"])
    fresh = ", ".join(f"{x:.1f}" for x in r["bare_products_s"])
    buf = ", ".join(f"{x:.1f}" for x in r["bare_buffered_s"])
    best_bare = min(min(r["bare_products_s"]), min(r["bare_buffered_s"]))
    rows = [("measure", "value"), ("---", "---"),
            (f"decode all {r['n_neurons']:,} neurons (runs {runs} s; best)",
             f"{min(r['decode_s']):.2f} s"),
            (f"bare products (fresh {fresh} s; buffered {buf} s; best)", f"{best_bare:.2f} s"),
            ("ratio decode / bare (best / median)",
             f"{r['ratio_best']:.3f} / {r['ratio_median']:.3f}"),
            ("GEMM rate of the best bare run", f"{r['gflops_bare']} GFLOP/s"),
            ("per neuron (ours)", f"{r['per_neuron_us']:.0f} us"),
            ("saving / loading the map (safetensors + JSON)",
             f"{r['map_save_s']:.2f} s / {r['map_load_s']:.3f} s"),
            (f"word search over the loaded map, median / max of {len(r['hits'])} words",
             f"{r['search_ms_median']:.1f} / {r['search_ms_max']:.1f} ms"),
            (f"word search with the token index built once ({r['token_index_s'] * 1e3:.0f} ms)",
             f"<= {r['search_indexed_ms_max']:.1f} ms")]
    best_ok, median_ok = r["ratio_best"] <= RATIO_GOAL, r["ratio_median"] <= RATIO_GOAL
    spread = (max(r["decode_s"]) - min(r["decode_s"])) / min(r["decode_s"])
    if best_ok and median_ok:
        goal = (f"The {RATIO_GOAL}x goal holds for the best runs ({r['ratio_best']:.2f}) and the "
                f"medians ({r['ratio_median']:.2f}).")
    elif best_ok:
        goal = (f"The {RATIO_GOAL}x goal holds for the best runs ({r['ratio_best']:.2f}) and not "
                f"for the medians ({r['ratio_median']:.2f}): the decoding runs themselves spread "
                f"by {spread:.0%}, so the ratio is not settled beyond \"between "
                f"{r['ratio_best']:.1f} and {r['ratio_median']:.1f}\".")
    else:
        goal = (f"The {RATIO_GOAL}x goal is not met ({r['ratio_best']:.2f} best, "
                f"{r['ratio_median']:.2f} median).")
    search_goal = (f"Word search answers under the {SEARCH_GOAL_MS:.0f} ms goal "
                   f"(max {r['search_ms_max']:.1f} ms)." if r["search_ms_max"] < SEARCH_GOAL_MS
                   else f"Word search misses the {SEARCH_GOAL_MS:.0f} ms goal "
                   f"(max {r['search_ms_max']:.1f} ms).")
    return "\n".join([START, "", *(f"| {a} | {b} |" for a, b in rows), "",
                      f"{goal} {search_goal}", "", END])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--side", default="up", choices=["up", "gate", "down"])
    ap.add_argument("--docs-only", action="store_true",
                    help="rewrite the docs block from the saved JSON and stop")
    args = ap.parse_args()
    if args.docs_only:
        splice_file(DOCS, docs_block(read_json(RESULTS / "bench_lm_neurons.json")), START, END)
        return
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
    if args.side == "up":
        splice_file(DOCS, docs_block(result), START, END)
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
