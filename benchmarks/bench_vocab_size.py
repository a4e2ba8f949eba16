"""Accuracy and faithfulness against vocabulary size (66, 150, 300, 500 concepts), 3 seeds.

The shipped 66-concept Fashion-MNIST vocabulary caps any CBL that reads concept scores. The
larger sets keep the 66 and add generated candidates through the Label-free CBM filters
(``concepts.expand.expanded_vocabulary``; the inactive filter uses the training embeddings
only). For each size: a dense probe on the K concept scores (the cap), and the scores-based
grounded l1 CBM at NEC = 5 and dense with its audit, over seeds 0, 1, 2 (data split fixed).

    .venv/bin/python benchmarks/bench_vocab_size.py [--n-train 10000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.bottleneck.heads import fit_dense_head
from conceptlab.concepts import builtin_vocabulary
from conceptlab.concepts.expand import expanded_vocabulary
from conceptlab.metrics import accuracy
from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.cbm import fit_cbm
from conceptlab.workflows.concepts import ConceptSource
from conceptlab.workflows.prepare import RunConfig, prepare
from conceptlab.workflows.variants import variant

RESULTS = Path(__file__).parent / "results"
SIZES = (66, 150, 300, 500)
SEEDS = (0, 1, 2)
VARIANT = "l1, scores CBL, grounded"
T_975 = {1: 12.706, 2: 4.303}


def interval(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    return f"{v.mean():.3f} ± {T_975.get(len(v) - 1, 1.96) * v.std(ddof=1) / np.sqrt(len(v)):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--grounding", type=float, default=None,
                    help="grounding weight (default: the one bench_faithfulness chose on "
                         "validation for this variant, else the library default)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seeds = SEEDS
    if args.quick:
        args.n_train, args.n_val, args.n_test, seeds = 300, 100, 200, (0,)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    prep = prepare(RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                             n_val=args.n_val, n_test=args.n_test, seed=0))
    v = variant(VARIANT)
    options = dict(v.options)
    chosen = RESULTS / "bench_faithfulness.json"
    if args.grounding is not None:
        options["cbl.grounding"] = args.grounding
    elif chosen.is_file():
        from conceptlab.utils.io import read_json

        g = read_json(chosen).get("fashion_mnist", {}).get("grounding_chosen", {}).get(VARIANT)
        if g is not None:
            options["cbl.grounding"] = g
    base = builtin_vocabulary("fashion-mnist")
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        vocab, report = expanded_vocabulary(base, prep.class_names, size,
                                            text_encoder=prep.encoder,
                                            train_embeddings=prep.X["train"])
        src = ConceptSource(vocab, vocab.to_bank(prep.encoder), f"expanded:{size}")
        S = {k: src.bank.scores(prep.X[k]) for k in ("train", "val", "test")}
        probe = fit_dense_head(S["train"], prep.y["train"], S["val"], prep.y["val"],
                               n_classes=len(prep.class_names))
        probe_acc = accuracy(prep.y["test"], probe.predict(S["test"]))
        for nec in (None, 5.0):
            for s in seeds:
                _, row = fit_cbm(prep, src, v.objective, nec, options, seed=s)
                f = row["faithfulness"]
                rows.append({"size": size, "n_concepts": len(vocab), "nec": nec, "seed": s,
                             "accuracy": row["accuracy"], "scores_probe_accuracy": probe_acc,
                             "filter_removed": report.n_input - report.n_output,
                             **{k: f.get(k) for k in ("unit_fidelity_median", "name_match_rate",
                                                      "random_bank_gap",
                                                      "random_bank_agreement")}})
                print(f"size {size} nec={nec} seed {s}: acc {row['accuracy']:.4f} "
                      f"fid {f['unit_fidelity_median']:.3f} gap {f['random_bank_gap']:+.3f}",
                      flush=True)
    md = [f"Fashion-MNIST through ConSE ({len(prep.y['train'])} train / {len(prep.y['val'])} "
          f"val / {len(prep.y['test'])} test), `{VARIANT}`, seeds {list(seeds)}: "
          f"mean ± 95% interval.", "",
          "| concepts | probe on the K scores | head | accuracy | unit fidelity | name match "
          "| random-bank gap | random-bank agreement |", "|---|---|---|---|---|---|---|---|"]
    for size in SIZES:
        for nec in (None, 5.0):
            r = [x for x in rows if x["size"] == size and x["nec"] == nec]
            md.append(f"| {r[0]['n_concepts']} | {r[0]['scores_probe_accuracy']:.3f} | "
                      f"{'dense' if nec is None else 'NEC=5'} | "
                      + " | ".join(interval([x[k] for x in r]) for k in (
                          "accuracy", "unit_fidelity_median", "name_match_rate",
                          "random_bank_gap", "random_bank_agreement")) + " |")
    name = "bench_vocab_size_quick" if args.quick else "bench_vocab_size"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / f"{name}.json", {"rows": rows, "options": options,
                                                 "seconds": round(time.perf_counter() - t0, 1)})
    write_text_atomic(RESULTS / f"{name}.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
