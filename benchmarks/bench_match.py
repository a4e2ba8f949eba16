"""Explicit concept matching (after SESA) against plain cosine and a dense learned map.

For each dataset the data split is fixed (seed 0, validation carved from train, recorded) and
the matchers' seeds vary (0, 1, 2). Rows (``workflows.match``): the encoder's cosine, the
cosine of untrained concept scores, the explicit matcher (bank concepts as dimensions,
pairwise ranking objective), the same with a random bank under the same names, and a dense
learned projection of the same size. Held-out leave-one-out same-class retrieval (nDCG@10,
R@10, P@1, mAP) and the explicit units' audit (fidelity, name match, concept AUROC).
The epoch of every matcher is chosen on validation nDCG@10; test is read once per seed.

    python benchmarks/bench_match.py --map runs/align-sprites [--seeds 0 1 2]

``--map`` is a folder written by ``conceptlab align --data idsprites`` (idsprites through the
caption-trained map); without it only robot texts (MiniLM) run. Writes
benchmarks/results/bench_match.{json,md} and bench_match.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from conceptlab.align.evaluate import mean_interval
from conceptlab.match import MatchConfig
from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.concepts import concept_source
from conceptlab.workflows.match import ROWS, evaluate_rows, fit_matchers
from conceptlab.workflows.prepare import RunConfig, prepare

RESULTS = Path(__file__).parent / "results"
METRICS = ("nDCG@10", "R@10", "P@1", "mAP")


def run_dataset(cfg: RunConfig, seeds: list[int], settings: MatchConfig) -> dict[str, Any]:
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    labels = None if src.concept_labels is None else src.concept_labels["test"]
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        rows = evaluate_rows(prep, src.bank, fit_matchers(prep, src.bank, settings, seed),
                             labels)
        per_seed.append({"seed": seed, "rows": rows, "seconds": time.perf_counter() - t0})
        print(cfg.data, seed, {r: round(v["nDCG@10"], 3) for r, v in rows.items()}, flush=True)
    summary: dict[str, Any] = {}
    for row in ROWS:
        s: dict[str, Any] = {}
        for m in METRICS:
            s[m] = mean_interval([p["rows"][row][m] for p in per_seed])
        if "audit" in per_seed[0]["rows"][row]:
            for m in ("unit_fidelity_median", "name_match_rate", "concept_auroc_units_mean",
                      "concept_auroc_scores_mean"):
                vals = [p["rows"][row]["audit"].get(m) for p in per_seed]
                if all(v is not None for v in vals):
                    s[m] = mean_interval(vals)
        summary[row] = s
    paired = [p["rows"]["explicit"]["nDCG@10"] - p["rows"]["dense"]["nDCG@10"] for p in per_seed]
    paired_cos = [p["rows"]["explicit"]["nDCG@10"] - p["rows"]["cosine"]["nDCG@10"]
                  for p in per_seed]
    return {"data": cfg.data, "encoder": cfg.encoder, "n_concepts": len(src.bank),
            "concepts": list(src.bank.names), "n_train": len(prep.y["train"]),
            "n_val": len(prep.y["val"]), "n_test": len(prep.y["test"]),
            "n_classes": len(prep.class_names), "splits": prep.splits.record,
            "summary": summary, "per_seed": per_seed,
            "paired_explicit_minus_dense_nDCG@10": mean_interval(paired),
            "paired_explicit_minus_cosine_nDCG@10": mean_interval(paired_cos)}


def fmt(pair: Any) -> str:
    return "-" if pair is None else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def table(result: dict[str, Any]) -> str:
    lines = []
    for ds in result["datasets"]:
        lines += [f"**{ds['data']}** through `{ds['encoder']}` ({ds['n_classes']} classes, "
                  f"{ds['n_concepts']} concepts; train {ds['n_train']}, val {ds['n_val']}, "
                  f"test {ds['n_test']}; seeds {result['seeds']})", "",
                  "| matcher | nDCG@10 | R@10 | P@1 | mAP | unit fidelity | name match |",
                  "|---|---|---|---|---|---|---|"]
        for row in ROWS:
            s = ds["summary"][row]
            lines.append(f"| {row} | " + " | ".join(fmt(s[m]) for m in METRICS) + " | "
                         f"{fmt(s.get('unit_fidelity_median'))} | "
                         f"{fmt(s.get('name_match_rate'))} |")
        d, c = ds["paired_explicit_minus_dense_nDCG@10"], ds[
            "paired_explicit_minus_cosine_nDCG@10"]
        lines += ["", f"Paired per seed, nDCG@10: explicit - dense {d[0]:+.3f} ± {d[1]:.3f}; "
                  f"explicit - cosine {c[0]:+.3f} ± {c[1]:.3f}.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result["datasets"]), figsize=(5.5 * len(result["datasets"]),
                                                                 3.6), squeeze=False)
    for ax, ds in zip(axes[0], result["datasets"], strict=True):
        means = [ds["summary"][r]["nDCG@10"][0] for r in ROWS]
        errs = [ds["summary"][r]["nDCG@10"][1] for r in ROWS]
        ax.bar(range(len(ROWS)), means, yerr=errs, color=["#999", "#bbb", "#2a7", "#c93", "#57a"])
        ax.set_xticks(range(len(ROWS)), [r.replace(", ", ",\n") for r in ROWS], fontsize=8)
        ax.set_ylabel("test nDCG@10 (same class)")
        ax.set_ylim(min(means) - 0.1, 1.0)
        ax.set_title(f"{ds['data']} ({ds['encoder'].split('/')[-1]})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--map", type=str, default=None)
    ap.add_argument("--robots-n-train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", type=str, default="bench_match")
    args = ap.parse_args()
    settings = MatchConfig(epochs=args.epochs, patience=6)
    configs = [RunConfig(data="robots-text", encoder="minilm", n_train=args.robots_n_train,
                         seed=0)]
    if args.map:
        configs.append(RunConfig(data="idsprites", encoder=f"linear:{args.map}", seed=0))
    t0 = time.perf_counter()
    result = {"benchmark": "bench_match", "seeds": args.seeds,
              "settings": settings.__dict__,
              "datasets": [run_dataset(c, args.seeds, settings) for c in configs],
              "seconds": time.perf_counter() - t0,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "command": "python benchmarks/bench_match.py" + (
                  f" --map {args.map}" if args.map else "")}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / f"{args.out}.json", result)
    md = table(result)
    write_text_atomic(RESULTS / f"{args.out}.md", md + "\n")
    plot(result, RESULTS / f"{args.out}.png")
    print(md)


if __name__ == "__main__":
    main()
