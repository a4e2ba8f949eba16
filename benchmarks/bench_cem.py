"""The concept embedding model (CEM, with RandInt) beside the joint CBM (``supervised``, Koh et
al.) on robot texts with ground-truth concepts, through the packaged MiniLM: one cached set of
embeddings, the data split fixed (seed 0, validation carved from train), model seeds 0, 1, 2.

Per model and seed: task accuracy, concept accuracy (CEM: p >= 0.5; CBM: unit thresholds fitted
on train, as ``fit`` reports it), the intervention curve (true concepts set in a seeded random
order) and the leakage columns (soft vs hard concept accuracy gap, oracle impurity with a
logistic predictor; the CBM's probabilities are the sigmoid of its units, which its BCE loss
trains as logits). Defaults of both models, no tuning on test.

    python benchmarks/bench_cem.py [--seeds 0 1 2] [--n-train N]

Writes benchmarks/results/bench_cem.{json,md} (the table is written from the JSON's numbers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("accuracy", "concept_accuracy", "all_corrected_accuracy", "soft_hard_gap",
           "oracle_impurity_logistic")


def interval(values: list[float]) -> tuple[float, float]:
    from scipy import stats

    a = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 \
        else float("nan")
    return float(a.mean()), float(half)


def markdown(result: dict[str, Any]) -> str:
    lines = ["| model | task accuracy | concept accuracy | accuracy, all concepts corrected | "
             "soft - hard concept accuracy (leakage) | oracle impurity (logistic) |",
             "|---|---|---|---|---|---|"]
    for name, summ in result["summary"].items():
        cells = [f"{summ[c][0]:.3f} ± {summ[c][1]:.3f}" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    curves = ["", "Intervention curves (mean over seeds; accuracy after n concepts corrected):", "",
              "| model | " + " | ".join(f"n={c['n_corrected']}" for c in
                                       result["mean_curves"][next(iter(result["mean_curves"]))])
              + " |"]
    curves.append("|---|" + "---|" * len(result["mean_curves"][next(iter(result["mean_curves"]))]))
    for name, curve in result["mean_curves"].items():
        curves.append(f"| {name} | " + " | ".join(f"{c['accuracy']:.3f}" for c in curve) + " |")
    return "\n".join(lines + curves) + "\n\n" + prose(result) + "\n"


def prose(result: dict[str, Any]) -> str:
    """The sentences that read the table, from the JSON's numbers only."""
    parts = []
    for name, summ in result["summary"].items():
        curve = result["mean_curves"][name]
        gain = curve[-1]["accuracy"] - curve[0]["accuracy"]
        leak = summ["soft_hard_gap"][0]
        parts.append(f"{name}: task accuracy {summ['accuracy'][0]:.3f}, concept accuracy "
                     f"{summ['concept_accuracy'][0]:.3f}, {gain:+.3f} from correcting every "
                     f"concept, and its soft concept probabilities predict the class "
                     f"{leak:+.3f} better than the thresholded concepts"
                     f" ({'above' if leak > 0.05 else 'within'} the 0.05 leakage flag).")
    return "Read it plainly: " + " ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_cem.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.faithfulness.leakage import leakage_columns
    from conceptlab.utils.io import write_json_atomic, write_text_atomic
    from conceptlab.workflows.cbm import fit_cbm
    from conceptlab.workflows.cem import fit_cem_row
    from conceptlab.workflows.concepts import concept_source
    from conceptlab.workflows.prepare import RunConfig, prepare

    t0 = time.perf_counter()
    cfg = RunConfig(data="robots-text", encoder="minilm", seed=0, n_train=args.n_train)
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    assert src.concept_labels is not None
    C = src.concept_labels
    rows: dict[str, list[dict[str, Any]]] = {"CEM (RandInt p_int=0.25)": [],
                                              "joint CBM (supervised)": []}
    for seed in args.seeds:
        _, r = fit_cem_row(prep, src, seed=seed)
        r["all_corrected_accuracy"] = r["intervention_curve"][-1]["accuracy"]
        r.update(r.pop("leakage"))
        rows["CEM (RandInt p_int=0.25)"].append(r)
        model, row = fit_cbm(prep, src, "supervised", None, seed=seed, controls=False)
        names = list(model.concept_names)
        cols = [list(src.bank.names).index(n) for n in names]

        def probs(X: np.ndarray, model: Any = model) -> np.ndarray:
            return 1 / (1 + np.exp(-model.unit_values(X)))

        leak = leakage_columns(probs(prep.X["train"]), prep.y["train"], probs(prep.X["test"]),
                              prep.y["test"], C["test"][:, cols], seed)
        keep = {k: row[k] for k in ("method", "seed", "accuracy", "val_accuracy",
                                    "concept_accuracy", "intervention_curve", "fit_seconds")}
        keep["all_corrected_accuracy"] = row["intervention_curve"][-1]["accuracy"]
        keep.update(leak)
        rows["joint CBM (supervised)"].append(keep)
        print(seed, {k: v[-1]["accuracy"] for k, v in rows.items()}, flush=True)
    summary = {name: {c: interval([r[c] for r in rs]) for c in COLUMNS}
               for name, rs in rows.items()}
    mean_curves = {name: [{"n_corrected": pts[0]["n_corrected"],
                           "accuracy": float(np.mean([p["accuracy"] for p in pts]))}
                          for pts in zip(*[r["intervention_curve"] for r in rs], strict=True)]
                   for name, rs in rows.items()}
    result = {"benchmark": "bench_cem", "data": "robots-text", "encoder": "minilm",
              "seeds": args.seeds, "splits": prep.splits.record,
              "n_train": len(prep.y["train"]), "n_test": len(prep.y["test"]),
              "n_concepts": len(src.bank), "summary": summary, "mean_curves": mean_curves,
              "rows": rows, "command": "python benchmarks/bench_cem.py " + " ".join(sys.argv[1:]),
              "seconds": time.perf_counter() - t0}
    write_json_atomic(args.out, result)
    write_text_atomic(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
