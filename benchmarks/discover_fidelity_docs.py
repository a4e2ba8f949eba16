"""Write the "Concept importance fidelity over 3 seeds" block of docs/benchmarks.md from the
JSON files of ``benchmarks/bench_discover_fidelity.py`` (the NMF and SAE runs at ``features``
and the run at ``_blocks.15``): the tables, Sobol minus occlusion paired per seed, and the
sentences that answer "does Sobol lead?", every claim read off the numbers.

    .venv/bin/python benchmarks/discover_fidelity_docs.py

A missing JSON leaves its table out and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.faithfulness.claims import t_interval
from conceptlab.utils.docblocks import markers, splice_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = markers("discover-fidelity")
METRICS = ("deletion_auc", "insertion_auc", "mu_fidelity")
#: +1 where a higher value is better
SIGN = {"deletion_auc": -1, "insertion_auc": 1, "mu_fidelity": 1}
RUNS = (("", "--methods nmf"), ("_sae", "--methods sae --tag sae"),
        ("_blocks15", "--layer _blocks.15 --source spatial --methods seminmf sae --tag blocks15"))
#: two orders whose means differ by less than this on every metric are "the same order"
TIE = 1e-3


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and 95% t half-width of the per-seed differences a - b."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if len(d) < 2:
        return float(d.mean()), float("nan")
    mean, _, hi = t_interval(d.tolist())
    return mean, hi - mean


def table(record: dict[str, Any]) -> list[str]:
    lines = ["| dictionary | order | deletion AUC (lower better) | insertion AUC (higher) | "
             "mu-fidelity (higher) |", "|---|---|---|---|---|"]
    for method, orders in record["summary"].items():
        for order, s in orders.items():
            lines.append(f"| {method} | {order} | " + " | ".join(
                f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}" for k in METRICS) + " |")
    return lines


def comparisons(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (layer, dictionary): Sobol - occlusion paired per seed, and the facts the words use."""
    out = []
    for rec in records:
        for method, orders in rec["summary"].items():
            sob, occ, gi, rnd = (orders[o] for o in ("sobol", "occlusion", "gradient_input",
                                                       "random"))
            diff = {k: paired(sob[k]["per_seed"], occ[k]["per_seed"]) for k in METRICS}
            worse = [k for k, (m, h) in diff.items() if SIGN[k] * m + h < 0]
            better = [k for k, (m, h) in diff.items() if SIGN[k] * m - h > 0]
            tie = max(abs(gi[k]["mean"] - occ[k]["mean"]) for k in METRICS)
            relative = {k: abs(diff[k][0]) / abs(occ[k]["mean"]) for k in METRICS}
            margin = min(rnd["deletion_auc"]["mean"] - orders[o]["deletion_auc"]["mean"]
                         for o in ("sobol", "occlusion", "gradient_input"))
            out.append({"layer": rec["layer"], "dictionary": method, "diff": diff,
                        "worse": worse, "better": better, "gi_vs_occlusion": tie,
                        "relative": relative, "random_margin": margin,
                        "mu_lead_occlusion_over_gi": occ["mu_fidelity"]["mean"]
                        - gi["mu_fidelity"]["mean"]})
    return out


def words(rows: list[dict[str, Any]]) -> list[str]:
    """The answer to "does Sobol lead?", read off ``comparisons``."""
    layers = sorted({r["layer"] for r in rows})
    lead = [r for r in rows if len(r["better"]) >= 2]
    trails = [r for r in rows if not r["better"]]
    where = "at either layer" if len(layers) == 2 else "at any layer" if len(layers) > 2 \
        else f"at `{layers[0]}`"
    if not lead and len(trails) == len(rows):
        answer = f"Not here, {where}."
    elif len(lead) == len(rows):
        answer = f"Yes, {where}."
    else:
        answer = "Only at " + ", ".join(f"`{r['layer']}` with {r['dictionary']}"
                                         for r in lead) + "." if lead else "Not clearly."
    out = [f"Does Sobol lead, as the holistic paper reports? **{answer}**"]
    for layer in layers:
        here = [r for r in rows if r["layer"] == layer]
        tied = all(r["gi_vs_occlusion"] < TIE for r in here)
        text = f"At `{layer}`: "
        if tied:
            text += ("gradient x input and occlusion give the same order on every metric "
                     f"(largest difference {max(r['gi_vs_occlusion'] for r in here):.1e}), "
                     "as they must where the logit is linear in the codes")
        else:
            text += "gradient x input and occlusion differ (occlusion ahead on mu-fidelity by " \
                + ", ".join(f"{r['mu_lead_occlusion_over_gi']:+.3f} with {r['dictionary']}"
                            for r in here) + "), so the rest of the network is not linear"
        parts = []
        for r in here:
            if r["worse"] and not r["better"]:
                rel = [r["relative"][k] * 100 for k in r["worse"]]
                parts.append(f"{r['dictionary']}: Sobol trails occlusion on "
                             f"{len(r['worse'])} of 3 metrics ({min(rel):.0f}-{max(rel):.0f}% "
                             "relative)")
            elif r["better"]:
                parts.append(f"{r['dictionary']}: Sobol ahead on {', '.join(r['better'])}")
            else:
                parts.append(f"{r['dictionary']}: no difference shown")
        out.append(text + "; " + "; ".join(parts) + ".")
    margin = min(r["random_margin"] for r in rows)
    out.append(f"Every estimator's deletion AUC is below a random order's by at least "
               f"{margin:.3f}.")
    return out


def block(results: Path = RESULTS) -> str:
    records, lines = [], [START, ""]
    for tag, args in RUNS:
        path = results / f"bench_discover_fidelity{tag}.json"
        cmd = ("`flock /tmp/conceptlab-heavy.lock python benchmarks/bench_discover_fidelity.py "
               f"{args}`")
        if not path.is_file():
            lines += [f"{cmd}: not run (no `{path.name}`).", ""]
            continue
        rec = json.loads(path.read_text(encoding="utf-8"))
        records.append(rec)
        lines += [f"{cmd} (layer `{rec['layer']}`, rows from `{rec['source']}`, seeds "
                  f"{rec['seeds']}, {rec['seconds'] / 60:.0f} min; mean ± std over seeds):", "",
                  *table(rec), ""]
    if records:
        rows = comparisons(records)
        lines += ["Sobol minus occlusion, paired over seeds (mean ± 95% t-interval; positive "
                  "deletion, negative insertion and negative mu-fidelity mean Sobol is worse):",
                  "", "| layer, dictionary | deletion AUC | insertion AUC | mu-fidelity |",
                  "|---|---|---|---|"]
        lines += [f"| `{r['layer']}`, {r['dictionary']} | " + " | ".join(
            f"{r['diff'][k][0]:+.3f} ± {r['diff'][k][1]:.3f}" for k in METRICS) + " |"
            for r in rows]
        lines += ["", *[w + "\n" for w in words(rows)]]
    return "\n".join([*lines, END])


def main() -> None:
    splice_file(DOCS, block(), START, END)
    print(f"wrote the discover-fidelity block into {DOCS}")


if __name__ == "__main__":
    main()
