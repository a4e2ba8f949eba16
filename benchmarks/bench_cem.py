"""The concept embedding model (CEM, with RandInt) beside the joint CBM (``supervised``, Koh et
al.) on the two offline data sets with ground-truth concepts, one backbone per data set:

* robot texts through the packaged MiniLM (9 binary concepts; the split fixed at seed 0);
* idsprites through the caption-trained linear map (EfficientNet-Lite0 -> MiniLM, ``conceptlab
  align`` fitted on the training captions with seed 0, the map the main job and
  ``bench_xai_metrics`` use; the shapes' ground-truth concepts).

Both models read the same cached embeddings and the same split (validation carved from the
official train split, test untouched until the end); model seeds 0, 1, 2; both at their
defaults, each choosing its own epoch / head on validation. Per model and seed: task accuracy,
concept accuracy (CEM: p >= 0.5; CBM: unit thresholds fitted on train, as ``fit`` reports it),
the intervention curve (true concepts set in a seeded random order per example, the same rule
for both) and the leakage columns of ``faithfulness.leakage`` (soft - hard concept accuracy gap,
oracle impurity with a logistic predictor; the CBM's probabilities are the sigmoid of its units,
which its BCE loss trains as logits). Summaries: mean ± 95% t-interval over seeds, and the
paired difference CEM - CBM per seed.

    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_cem.py [--seeds 0 1 2] [--docs]

Writes benchmarks/results/bench_cem.{json,md,png} (the tables, sentences and the figure of the
intervention curves come from the JSON's numbers); ``--docs`` also rewrites the section between
the markers in docs/benchmarks.md; ``--from-json`` skips the runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.utils.docblocks import splice_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- cem-bench:start -->", "<!-- cem-bench:end -->"
CEM, CBM = "CEM (RandInt p_int=0.25)", "joint CBM (supervised)"
COLUMNS = ("accuracy", "concept_accuracy", "half_corrected_accuracy", "all_corrected_accuracy",
           "soft_hard_gap", "oracle_impurity_logistic")
HEADERS = {"accuracy": "task accuracy", "concept_accuracy": "concept accuracy",
           "half_corrected_accuracy": "accuracy, half the concepts corrected",
           "all_corrected_accuracy": "accuracy, all concepts corrected",
           "soft_hard_gap": "soft - hard concept accuracy (leakage)",
           "oracle_impurity_logistic": "oracle impurity (logistic)"}
PAIRED = ("accuracy", "concept_accuracy", "all_corrected_accuracy")
SPRITES = {"n_train": 800, "n_test": 400}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    from scipy import stats

    a = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 \
        else float("nan")
    return float(a.mean()), float(half)


def _pm(v: list[float] | tuple[float, float], digits: int = 3) -> str:
    return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"


def leakage_flag() -> float:
    """The audit's leakage bar (``faithfulness.leakage.LEAKAGE_GAP``)."""
    from conceptlab.faithfulness.leakage import LEAKAGE_GAP

    return float(LEAKAGE_GAP)


def verdict(diff: list[float] | tuple[float, float]) -> str:
    """'higher than' / 'lower than' when the paired interval excludes 0, else 'no different
    from' (the CEM against the joint CBM)."""
    mean, half = float(diff[0]), float(diff[1])
    if mean - half > 0:
        return "higher than"
    if mean + half < 0:
        return "lower than"
    return "no different from"


def markdown(result: dict[str, Any]) -> str:
    """Per data set: the summary table, the paired differences and the sentences."""
    out: list[str] = []
    for name, ds in result["datasets"].items():
        out += [f"**{name}** ({ds['backbone']}; {ds['n_train']} train / {ds['n_val']} val / "
                f"{ds['n_test']} test, {ds['n_concepts']} concepts)", "",
                "| model | " + " | ".join(HEADERS[c] for c in COLUMNS) + " |",
                "|---|" + "---|" * len(COLUMNS)]
        for model, summ in ds["summary"].items():
            out.append(f"| {model} | " + " | ".join(_pm(summ[c]) for c in COLUMNS) + " |")
        out += ["", "| paired difference CEM - CBM | " + " | ".join(HEADERS[c] for c in PAIRED)
                + " |", "|---|" + "---|" * len(PAIRED),
                "| mean ± 95% t-interval | " + " | ".join(_pm(ds["paired"][c]) for c in PAIRED)
                + " |", "", prose_dataset(name, ds), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def prose_dataset(name: str, ds: dict[str, Any]) -> str:
    """The sentences that read one data set's tables, from the JSON's numbers only."""
    p, s = ds["paired"], ds["summary"]
    gains = {m: ds["curves"][m][-1]["accuracy"][0] - ds["curves"][m][0]["accuracy"][0]
             for m in ds["curves"]}
    flag = leakage_flag()
    leaks = [f"{m} {s[m]['soft_hard_gap'][0]:+.3f} "
             f"({'above' if s[m]['soft_hard_gap'][0] > flag else 'within'} the "
             f"{flag:g} leakage flag)" for m in s]
    return (f"Read it plainly ({name}): the CEM's task accuracy is "
            f"{verdict(p['accuracy'])} the joint CBM's ({p['accuracy'][0]:+.3f} ± "
            f"{p['accuracy'][1]:.3f}, paired over seeds), its concept accuracy "
            f"{verdict(p['concept_accuracy'])} the CBM's ({p['concept_accuracy'][0]:+.3f} ± "
            f"{p['concept_accuracy'][1]:.3f}), and with every concept corrected its accuracy is "
            f"{verdict(p['all_corrected_accuracy'])} the CBM's "
            f"({p['all_corrected_accuracy'][0]:+.3f} ± "
            f"{p['all_corrected_accuracy'][1]:.3f}). Correcting every concept adds "
            + ", ".join(f"{g:+.3f} to the {m}" for m, g in gains.items())
            + ". Soft minus hard concept accuracy: " + "; ".join(leaks) + ".")


def prose(result: dict[str, Any]) -> str:
    return " ".join(prose_dataset(n, ds) for n, ds in result["datasets"].items())


def docs_section(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section (between the markers), written from the JSON."""
    seeds = ", ".join(map(str, result["seeds"]))
    return (f"{START}\n\n## Concept embedding model beside the joint CBM (`benchmarks/"
            f"bench_cem.py`, issue 22)\n\n"
            f"`{result['command']}` ({result['seconds']:.0f} s under the shared lock). "
            f"Model seeds {seeds}, mean ± 95% t-interval; one backbone per data set, the same "
            f"cached embeddings and split for both models (validation carved from train, each "
            f"model picks its epoch / head on validation, defaults, no tuning on test); "
            f"concept accuracy: the CEM's p >= 0.5, the CBM's unit thresholds fitted on train; "
            f"intervention curves set the true concepts in a seeded random order per example. "
            f"Tables: `benchmarks/results/bench_cem.md`.\n\n{markdown(result)}\n"
            f"![intervention curves, CEM and joint CBM](../benchmarks/results/bench_cem.png)"
            f"\n\n{END}")


def write_docs(result: dict[str, Any], path: Path = DOCS) -> None:
    """Replace (or append) the marked section of docs/benchmarks.md."""
    splice_file(path, docs_section(result), START, END)


def curves_figure(result: dict[str, Any]) -> Any:
    """One panel per data set: each model's mean intervention curve with its 95% band."""
    from matplotlib.figure import Figure

    names = list(result["datasets"])
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.0 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        for model, curve in result["datasets"][name]["curves"].items():
            xs = [p["n_corrected"] for p in curve]
            m = np.array([p["accuracy"][0] for p in curve])
            h = np.nan_to_num(np.array([p["accuracy"][1] for p in curve]))
            ax.plot(xs, m, marker="o", ms=3, label=model)
            ax.fill_between(xs, m - h, m + h, alpha=0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("concepts corrected per example")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{name}, seeds {', '.join(map(str, result['seeds']))}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def run_dataset(prep: Any, seeds: list[int]) -> dict[str, Any]:
    """Both models on one prepared data set, every seed."""
    from conceptlab.faithfulness.leakage import leakage_columns
    from conceptlab.workflows.cbm import fit_cbm
    from conceptlab.workflows.cem import fit_cem_row
    from conceptlab.workflows.concepts import concept_source

    src = concept_source(prep, "auto")
    if src.concept_labels is None:
        raise SystemExit(f"{prep.config.data}: no concept labels")
    C = src.concept_labels
    rows: dict[str, list[dict[str, Any]]] = {CEM: [], CBM: []}
    for seed in seeds:
        _, r = fit_cem_row(prep, src, seed=seed)
        r.update(r.pop("leakage"))
        rows[CEM].append({k: v for k, v in r.items()
                          if k not in ("faithfulness", "hyper_parameters")})
        model, row = fit_cbm(prep, src, "supervised", None, seed=seed, controls=False)
        cols = [list(src.bank.names).index(n) for n in model.concept_names]

        def probs(X: np.ndarray, model: Any = model) -> np.ndarray:
            return 1 / (1 + np.exp(-model.unit_values(X)))

        leak = leakage_columns(probs(prep.X["train"]), prep.y["train"], probs(prep.X["test"]),
                               prep.y["test"], C["test"][:, cols], seed)
        rows[CBM].append({k: row[k] for k in ("seed", "accuracy", "val_accuracy",
                                              "concept_accuracy", "intervention_curve",
                                              "fit_seconds")} | leak)
        print(prep.config.data, seed, {m: round(rs[-1]["accuracy"], 3)
                                       for m, rs in rows.items()}, flush=True)
    for rs in rows.values():
        for r in rs:
            curve = r["intervention_curve"]
            r["all_corrected_accuracy"] = curve[-1]["accuracy"]
            r["half_corrected_accuracy"] = curve[(len(curve) - 1) // 2]["accuracy"]
    summary = {m: {c: interval([r[c] for r in rs]) for c in COLUMNS} for m, rs in rows.items()}
    paired = {c: interval([a[c] - b[c] for a, b in zip(rows[CEM], rows[CBM], strict=True)])
              for c in PAIRED}
    curves = {m: [{"n_corrected": pts[0]["n_corrected"],
                   "accuracy": interval([p["accuracy"] for p in pts])}
                  for pts in zip(*[r["intervention_curve"] for r in rs], strict=True)]
              for m, rs in rows.items()}
    return {"data": prep.config.data, "data_options": prep.config.data_options,
            "encoder": prep.config.encoder, "splits": prep.splits.record,
            "n_train": len(prep.y["train"]), "n_val": len(prep.y["val"]),
            "n_test": len(prep.y["test"]), "n_concepts": len(src.bank),
            "summary": summary, "paired": paired, "curves": curves, "rows": rows}


def sprites_map(cache_dir: str | None) -> str:
    """The caption-trained map of the main job (seed 0), fitted once into the cache."""
    from conceptlab.workflows.demo_sprites import sprites_map as fitted_map

    return fitted_map(cache_dir, dict(SPRITES), seed=0)


def run(seeds: list[int], cache_dir: str | None) -> dict[str, Any]:
    from conceptlab.workflows.prepare import RunConfig, prepare

    t0 = time.perf_counter()
    datasets: dict[str, Any] = {}
    prep = prepare(RunConfig(data="robots-text", encoder="minilm", seed=0, cache_dir=cache_dir))
    datasets["robot texts"] = {**run_dataset(prep, seeds), "backbone": "MiniLM"}
    prep = prepare(RunConfig(data="idsprites", encoder=sprites_map(cache_dir), seed=0,
                             cache_dir=cache_dir, data_options=dict(SPRITES)))
    datasets["idsprites"] = {**run_dataset(prep, seeds),
                             "backbone": "caption-trained map EfficientNet-Lite0 -> MiniLM"}
    return {"benchmark": "bench_cem", "seeds": seeds, "datasets": datasets,
            "command": "python benchmarks/bench_cem.py " + " ".join(sys.argv[1:]),
            "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_cem.json")
    ap.add_argument("--docs", action="store_true", help="rewrite the docs/benchmarks.md section")
    ap.add_argument("--from-json", action="store_true", help="only rewrite md/png/docs from --out")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.report.plots import save_png
    from conceptlab.utils.io import read_json, write_json_atomic, write_text_atomic

    if args.from_json:
        result = read_json(args.out)
    else:
        result = run(args.seeds, args.cache_dir)
        write_json_atomic(args.out, result)
    write_text_atomic(args.out.with_suffix(".md"), markdown(result))
    save_png(curves_figure(result), args.out.with_suffix(".png"))
    if args.docs:
        write_docs(result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
