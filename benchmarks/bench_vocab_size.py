"""Accuracy and faithfulness against vocabulary size (66, 150, 300, 500 concepts), 3 seeds.

The shipped 66-concept Fashion-MNIST vocabulary caps any CBL that reads concept scores. The
larger sets keep the 66 and add generated candidates through the Label-free CBM filters
(``concepts.expand.expanded_vocabulary``; the inactive filter uses the training embeddings
only). For each size: a dense probe on the K concept scores (the cap), and the scores-based
grounded l1 CBM at NEC = 5 and dense with its audit, over seeds 0, 1, 2 (data split fixed).

    .venv/bin/python benchmarks/bench_vocab_size.py [--n-train 10000] [--quick]
    .venv/bin/python benchmarks/bench_vocab_size.py --docs-only   # rewrite the docs block

Writes benchmarks/results/bench_vocab_size.{json,md} and its block of docs/benchmarks.md
(between ``<!-- vocab-size:start -->`` and ``:end -->``): the table and the sentences under
it, every word about a result taken from the numbers (``summary_words``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from conceptlab.bottleneck.heads import fit_dense_head
from conceptlab.concepts import builtin_vocabulary
from conceptlab.concepts.expand import expanded_vocabulary
from conceptlab.faithfulness.claims import t_interval
from conceptlab.metrics import accuracy
from conceptlab.utils.docblocks import markers, splice_file
from conceptlab.utils.io import read_json, write_json_atomic, write_text_atomic
from conceptlab.workflows.cbm import fit_cbm
from conceptlab.workflows.concepts import ConceptSource
from conceptlab.workflows.prepare import RunConfig, prepare
from conceptlab.workflows.variants import variant

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = markers("vocab-size")
#: the bar every CBM row must meet on test (bench_faithfulness.TEST_BAR)
BAR = 0.8
SIZES = (66, 150, 300, 500)
SEEDS = (0, 1, 2)
VARIANT = "l1, scores CBL, grounded"


def mean_half(values: list[float]) -> tuple[float, float]:
    """Mean and 95% t half-width (0 for a single value)."""
    mean, _, hi = t_interval(values)
    return mean, hi - mean


def interval(values: list[float]) -> str:
    mean, half = mean_half(values)
    return f"{mean:.3f}" if len(values) < 2 else f"{mean:.3f} ± {half:.3f}"


def _cell(rows: list[dict[str, Any]], size: int, nec: float | None) -> list[dict[str, Any]]:
    return [x for x in rows if x["size"] == size and x["nec"] == nec]


def _trend(rows: list[dict[str, Any]], sizes: list[int], nec: float | None) -> str:
    """How accuracy moves from the smallest to the largest vocabulary, judged against the
    seeds' intervals at both ends."""
    lo_m, lo_h = mean_half([x["accuracy"] for x in _cell(rows, sizes[0], nec)])
    hi_m, hi_h = mean_half([x["accuracy"] for x in _cell(rows, sizes[-1], nec)])
    n_lo = _cell(rows, sizes[0], nec)[0]["n_concepts"]
    n_hi = _cell(rows, sizes[-1], nec)[0]["n_concepts"]
    verb = ("rises" if hi_m - lo_m > lo_h + hi_h else
            "falls" if lo_m - hi_m > lo_h + hi_h else "stays within the seeds' spread")
    return f"{verb} from {lo_m:.3f} ({n_lo}) to {hi_m:.3f} ({n_hi})"


def summary_words(rows: list[dict[str, Any]]) -> str:
    """The sentences under the table, every claim read off ``rows``."""
    sizes = sorted({x["size"] for x in rows})
    dense, sparse = _trend(rows, sizes, None), _trend(rows, sizes, 5.0)
    lifted = dense.startswith("rises") or sparse.startswith("rises")
    cells = [_cell(rows, s, n) for s in sizes for n in (None, 5.0)]
    fid = min(mean_half([x["unit_fidelity_median"] for x in c])[0] for c in cells)
    name = min(mean_half([x["name_match_rate"] for x in c])[0] for c in cells)
    keep = fid >= BAR and name >= BAR
    gaps = [(c[0]["n_concepts"], *mean_half([x["random_bank_gap"] for x in c])) for c in cells]
    above = sorted({n for n, m, h in gaps if m - h > 0})
    words = [f"{'More concepts lift the cap' if lifted else 'More concepts do not lift the cap'}"
             f": dense accuracy {dense}, NEC = 5 {sparse}, while the units "
             + (f"keep meaning their scores (fidelity >= {fid:.2f}, name match >= {name:.2f})."
                if keep else
                f"drift from their scores at some size (lowest fidelity {fid:.2f}, lowest "
                f"name match {name:.2f}; the bar is {BAR})."),
             ]
    if above:
        words.append("Named directions beat random ones (random-bank gap above zero with its "
                     f"interval) at {', '.join(str(n) for n in above)} concepts.")
    else:
        worst = max(m for _, m, _ in gaps)
        words.append(f"The random-bank gap is not above zero at any size (largest mean "
                     f"{worst:+.3f}): in the ConSE space more named directions help no more "
                     "than as many random ones.")
    return " ".join(words)


def markdown(record: dict[str, Any]) -> list[str]:
    """The table of ``record`` (the JSON this script writes), then its sentences."""
    rows = record["rows"]
    seeds = sorted({x["seed"] for x in rows})
    split = record.get("split", {})
    md = [f"Fashion-MNIST through ConSE ({split.get('train', '?')} train / "
          f"{split.get('val', '?')} val / {split.get('test', '?')} test), `{VARIANT}`, seeds "
          f"{seeds}: mean ± 95% interval.", "",
          "| concepts | probe on the K scores | head | accuracy | unit fidelity | name match "
          "| random-bank gap | random-bank agreement |", "|---|---|---|---|---|---|---|---|"]
    for size in sorted({x["size"] for x in rows}):
        for nec in (None, 5.0):
            r = _cell(rows, size, nec)
            md.append(f"| {r[0]['n_concepts']} | {r[0]['scores_probe_accuracy']:.3f} | "
                      f"{'dense' if nec is None else 'NEC=5'} | "
                      + " | ".join(interval([x[k] for x in r]) for k in (
                          "accuracy", "unit_fidelity_median", "name_match_rate",
                          "random_bank_gap", "random_bank_agreement")) + " |")
    return [*md, "", summary_words(rows)]


def write_docs(record: dict[str, Any], docs: Path = DOCS) -> None:
    """Replace the vocab-size block of ``docs`` with the table and words of ``record``."""
    block = "\n".join([START, "", *markdown(record), "", END])
    splice_file(docs, block, START, END)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--grounding", type=float, default=None,
                    help="grounding weight (default: the one bench_faithfulness chose on "
                         "validation for this variant, else the library default)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs-only", action="store_true",
                    help="rewrite the docs block from the saved JSON and stop")
    args = ap.parse_args()
    if args.docs_only:
        write_docs(read_json(RESULTS / "bench_vocab_size.json"))
        print(f"wrote the vocabulary-size block into {DOCS}")
        return
    seeds = SEEDS
    if args.quick:
        args.n_train, args.n_val, args.n_test, seeds = 300, 100, 200, (0,)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    prep = prepare(RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                             n_val=args.n_val, n_test=args.n_test, seed=0))
    v = variant(VARIANT)
    options = dict(v.options)
    chosen = RESULTS / "bench_faithfulness_fashion.json"
    if args.grounding is not None:
        options["cbl.grounding"] = args.grounding
    elif chosen.is_file():
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
    name = "bench_vocab_size_quick" if args.quick else "bench_vocab_size"
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"rows": rows, "options": options,
              "split": {k: len(prep.y[k]) for k in ("train", "val", "test")},
              "seconds": round(time.perf_counter() - t0, 1)}
    md = markdown(record)
    write_json_atomic(RESULTS / f"{name}.json", record)
    write_text_atomic(RESULTS / f"{name}.md", "\n".join(md) + "\n")
    if not args.quick:
        write_docs(record)
    print("\n".join(md))


if __name__ == "__main__":
    main()
