"""DN-CBM beside the faithfulness table's rows: the same offline ConSE embeddings of
Fashion-MNIST, the same splits (10,000 train / 1,000 val carved from train / the full official
test), the same vocabulary (the built-in Fashion-MNIST concepts through MiniLM, as the CBM rows
name theirs), the same audit columns, seeds 0, 1, 2 (mean ± 95% t-interval).

    python benchmarks/bench_dncbm.py [--n-train 10000] [--seeds 0 1 2] [--units 1536]

Each row is ``workflows.dncbm.fit_dncbm_row`` (what ``conceptlab fit --method dncbm`` runs),
at NEC = 5 and with a dense head, audited by ``discover.dncbm_audit`` (with its
shuffled-name fidelity null).
Writes benchmarks/results/bench_dncbm.{json,md} and the ``<!-- dncbm:start/end -->`` block of
docs/benchmarks.md: the tables and the paragraph under them, its words from these numbers and
from the faithfulness table's best grounded CBM (``words``). ``--docs-only`` rewrites the
block from the saved JSON files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_faithfulness import FAITH_COLUMNS, TEST_BAR, fmt, interval, markdown, summarize

from conceptlab.utils.docblocks import markers, splice_file
from conceptlab.utils.io import read_json

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = markers("dncbm")
EXTRA = ("shuffled_name_fidelity", "name_cosine_mean", "distinct_names_used", "n_units_used")


def tables(record: dict[str, Any]) -> str:
    """The audit table and the DN-CBM-only table of ``record`` (the JSON this script writes)."""
    sizes, summary = record["splits"]["sizes"], record["summary"]
    return (f"DN-CBM, Fashion-MNIST, offline ConSE ({sizes['train']} train / {sizes['val']} val "
            f"from train / {sizes['test']} test), {record['n_vocab']}-concept vocabulary, seeds "
            f"{record['seeds']}\n\n"
            + markdown(summary, FAITH_COLUMNS[:8]) + "\n\n"
            + "| head | alive units | units used | distinct names used | mean name cosine "
              "| fidelity to a shuffled name | SAE R² |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(f"| {'dense' if e['nec'] is None else 'NEC=5'} | "
                        f"{fmt(e['alive_units'])} | {fmt(e['n_units_used'])} | "
                        f"{fmt(e['distinct_names_used'])} | {fmt(e['name_cosine_mean'])} | "
                        f"{fmt(e['shuffled_name_fidelity'])} | {fmt(e['sae_r2'])} |"
                        for e in summary if "sae_r2" in e) + "\n")


def _entry(summary: list[dict[str, Any]], method: str | None, nec: float | None
           ) -> dict[str, Any]:
    return next(e for e in summary if (method is None or e["method"] == method)
                and e["nec"] == nec and (method is not None or "sae_r2" in e))


def words(record: dict[str, Any], faithfulness: dict[str, Any] | None) -> str:
    """The paragraph under the tables. ``faithfulness``: bench_faithfulness's Fashion-MNIST
    table (its best grounded CBM, chosen on validation, is the comparison), or None."""
    summary = record["summary"]
    sparse, dense = _entry(summary, None, 5.0), _entry(summary, None, None)
    probe = _entry(summary, "linear-probe", None)["accuracy"][0]
    passes = [sparse.get("faithful_cbm"), dense.get("faithful_cbm")]
    f5, fd = sparse["unit_fidelity_median"], dense["unit_fidelity_median"]
    n5, nd = sparse["shuffled_name_fidelity"], dense["shuffled_name_fidelity"]

    def above_null(f: list[float], n: list[float]) -> bool:
        return f[0] - f[1] > n[0] + n[1]

    tracks = ("tracks" if f5[0] >= TEST_BAR else "partly tracks" if f5[0] >= 0.5
              else "barely tracks")
    info = {head: above_null(f, n) for head, f, n in (("NEC = 5", f5, n5), ("dense", fd, nd))}
    above = [h for h, ok in info.items() if ok]
    below = [h for h, ok in info.items() if not ok]
    carry = "; ".join(x for x in (
        f"the correlation is above the shuffled-name null at {' and '.join(above)}"
        if above else "",
        f"not above it at {' and '.join(below)}" if below else "") if x)
    if max(f5[0], fd[0]) < TEST_BAR / 2:
        carry += ", and far below the bar"
    match = sorted([sparse["name_match_rate"][0], dense["name_match_rate"][0]])
    cos = sorted([sparse["name_cosine_mean"][0], dense["name_cosine_mean"][0]])
    agree, gap = sparse["random_bank_agreement"][0], sparse["random_bank_gap"][0]
    verdict = ("passes the faithfulness checks here at both heads" if all(passes) else
               "does not pass the faithfulness checks here" if not any(passes) else
               "passes the faithfulness checks at one head only")
    out = [f"DN-CBM {verdict}, and the audit says why. The SAE fits the embeddings (R² "
           f"{sparse['sae_r2'][0]:.2f}), and a unit's activation {tracks} the encoder's score "
           f"of the name it was given: median correlation {f5[0]:.2f} at NEC = 5 and "
           f"{fd[0]:.2f} dense (the faithful-CBM bar: {TEST_BAR}), against {n5[0]:.2f} and "
           f"{nd[0]:.2f} for a shuffled name (the null), and {match[0] * 100:.0f}-"
           f"{match[1] * 100:.0f}% of used units correlate best with their own name among the "
           f"{record['n_vocab']} (bar: {TEST_BAR * 100:.0f}%): {carry}. The names were chosen "
           f"by cosine between a unit's decoder direction and a name's text embedding, and "
           f"those cosines are {cos[0]:.2f}-{cos[1]:.2f}."]
    if agree == 1.0 and gap == 0.0:
        out.append("The random-vocabulary columns read 1.000 agreement and a zero gap by "
                   "construction (neither the SAE nor the head reads the vocabulary; a test "
                   "refits with a random one and checks identical logits).")
    line = f"Accuracy is {sparse['accuracy'][0]:.3f} at NEC = 5"
    if faithfulness is not None:
        best = faithfulness["claims"]["best_grounded_at_nec5_chosen_on_val"]
        b = _entry(faithfulness["summary"], best, 5.0)
        line += (f" against {b['accuracy'][0]:.3f} for our best grounded CBM on the same "
                 f"embeddings ({best}, chosen on validation; unit fidelity "
                 f"{b['unit_fidelity_median'][0]:.2f})")
    out.append(line + f" and {probe:.3f} for the linear probe.")
    return " ".join(out)


def docs_block(record: dict[str, Any], faithfulness: dict[str, Any] | None) -> str:
    return "\n".join([START, "", tables(record), words(record, faithfulness), "", END])


def write_docs(record: dict[str, Any]) -> None:
    fpath = RESULTS / "bench_faithfulness_fashion.json"
    table = read_json(fpath)["fashion_mnist"] if fpath.is_file() else None
    splice_file(DOCS, docs_block(record, table), START, END)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--units", type=int, default=1536, help="SAE units (4 x 384)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--docs-only", action="store_true",
                    help="rewrite the docs block from benchmarks/results/bench_dncbm.json")
    args = ap.parse_args()
    if args.docs_only:
        write_docs(read_json(RESULTS / "bench_dncbm.json"))
        print(f"wrote the DN-CBM block into {DOCS}")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.utils.io import write_json_atomic, write_text_atomic
    from conceptlab.workflows.baselines import probe_accuracy
    from conceptlab.workflows.concepts import concept_source
    from conceptlab.workflows.dncbm import fit_dncbm_row
    from conceptlab.workflows.prepare import RunConfig, prepare

    cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                    n_val=args.n_val, n_test=args.n_test, seed=0)
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    per_seed: dict[int, list[dict[str, Any]]] = {}
    acc, _ = probe_accuracy(prep)  # deterministic: the same for every seed
    for seed in args.seeds:
        rows: list[dict[str, Any]] = [{"method": "linear-probe", "nec_requested": None,
                                       "accuracy": acc}]
        for nec in (5.0, None):
            t0 = time.perf_counter()
            _, row = fit_dncbm_row(prep, src, nec, {"units": args.units}, seed=seed)
            row = {**row, "method": f"DN-CBM (SAE {args.units} units)", "kind": "reference",
                   "is_cbm": True, "seconds_with_audit": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            f = row["faithfulness"]
            print(f"seed {seed} nec={nec}: acc={row['accuracy']:.4f} "
                  f"fidelity={f['unit_fidelity_median']:.2f} "
                  f"name_match={f['name_match_rate']:.2f} "
                  f"agree={f['random_bank_agreement']:.3f} "
                  f"({row['seconds_with_audit']:.0f} s)", flush=True)
        per_seed[seed] = rows
    summary = summarize(per_seed)
    for e in summary:  # the DN-CBM-only columns
        rows = [r for rs in per_seed.values() for r in rs if r["method"] == e["method"]
                and r.get("nec_requested") == e["nec"]]
        for col in EXTRA:
            vals = [r.get("faithfulness", {}).get(col) for r in rows]
            if all(v is not None for v in vals) and vals:
                e[col] = interval([float(v) for v in vals])
        if rows and "dncbm" in rows[0]:
            e["sae_r2"] = interval([r["dncbm"]["sae_quality"]["r2"] for r in rows])
            e["alive_units"] = interval([float(r["dncbm"]["alive_units"]) for r in rows])
    record = {
        "config": cfg.__dict__, "splits": prep.splits.record, "n_vocab": len(src.bank),
        "units": args.units, "seeds": args.seeds, "per_seed": per_seed, "summary": summary,
        "command": "python benchmarks/bench_dncbm.py " + " ".join(sys.argv[1:])}
    md = tables(record)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "bench_dncbm.json", record)
    write_text_atomic(RESULTS / "bench_dncbm.md", md)
    if args.seeds == [0, 1, 2] and args.n_train == 10000:
        write_docs(record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
