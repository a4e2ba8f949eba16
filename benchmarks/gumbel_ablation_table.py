"""docs/benchmarks.md's Gumbel-ablation section, generated from bench_gumbel_ablation.json.

    .venv/bin/python benchmarks/gumbel_ablation_table.py

Replaces the text between the section's two markers; every number and every sentence that
states a result comes from the JSON (``render`` is a pure function, tested).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from conceptlab.utils import docblocks

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_gumbel_ablation.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- gumbel-ablation:start -->", "<!-- gumbel-ablation:end -->"
#: "competitive" (issue 18): within this many accuracy points of l1 at NEC = 5
MARGIN = 0.02


README = ROOT / "README.md"
R_START, R_END = "<!-- gumbel-verdict:start -->", "<!-- gumbel-verdict:end -->"


def _pm(pair: list[float] | None, scale: float = 1.0, digits: int = 3) -> str:
    if pair is None:
        return "diverged"
    return f"{pair[0] * scale:.{digits}f} ± {pair[1] * scale:.{digits}f}"


def verdict(r: dict[str, Any]) -> tuple[bool, float, bool]:
    """(competitive, accuracy gap to l1 in points, fewer active concepts) by issue 18's bar."""
    best, l1 = r["summary"]["gumbel (best on validation)"], r["summary"]["l1 (ours)"]
    gap = l1["accuracy"][0] - best["accuracy"][0]
    fewer = best["mean_active_concepts"][0] < l1["mean_active_concepts"][0]
    return gap <= MARGIN and fewer, gap * 100, fewer


def render_one(name: str, r: dict[str, Any], seeds: list[int]) -> list[str]:
    n = r["sizes"]
    lines = [f"### {name} ({n['train']} train / {n['val']} val / {n['test']} test, "
             f"{r['n_concepts']} concepts, NEC = 5)", "",
             "Ablation on validation (model seed 0; one factor changed from conceptlab's "
             "`gumbel`):", "",
             "| configuration | val accuracy | val active concepts / decision | "
             "val top-unit ceiling |", "|---|---|---|---|"]
    for row in r["ablation"]:
        lines.append(f"| {row['config']} | {row['val_accuracy']:.3f} | "
                     f"{row['val_mean_active_concepts']:.2f} | "
                     f"{row['val_top_unit_ceiling']:.3f} |")
    lines += ["", f"Test, seeds {seeds} (mean ± 95% t-interval):", "",
              "| model | test accuracy | active concepts / decision | unit fidelity |",
              "|---|---|---|---|"]
    for model, s in r["summary"].items():
        bad = s.get("n_diverged", 0)
        note = f" ({bad} of {len(seeds)} seeds diverged: non-finite loss)" if bad else ""
        lines.append(f"| {model}{note} | {_pm(s['accuracy'])} | "
                     f"{_pm(s['mean_active_concepts'], digits=2)} | "
                     f"{_pm(s['unit_fidelity_median'], digits=2)} |")
    diff = r["paired_best_gumbel_minus_l1"]
    competitive, gap_points, fewer = verdict(r)
    gap = gap_points / 100
    default = next(row for row in r["ablation"] if row["config"].startswith("default"))
    top = max((row for row in r["ablation"] if row["method"] == "gumbel"),
              key=lambda row: row["val_accuracy"])
    l1v = next(row for row in r["ablation"] if row["method"] == "l1")
    above = default["val_accuracy"] > default["val_top_unit_ceiling"]
    rule = r.get("selection_rule", "best validation accuracy")
    opts = r.get("chosen_options")
    lines += ["", f"Rule fixed before the runs: {rule}. "
              f"Chosen on validation: **{r['chosen_on_validation']}**"
              f"{f' (settings {opts})' if opts else ''}. Its paired "
              f"difference to l1 is {_pm(diff, 100, 1)} points "
              f"({'within' if gap <= MARGIN else 'not within'} {MARGIN * 100:g} points, "
              f"{'with fewer' if fewer else 'without fewer'} active concepts per decision): "
              f"{'competitive' if competitive else 'not competitive'} by issue 18's bar.",
              f"The default Gumbel's validation accuracy ({default['val_accuracy']:.3f}) is "
              f"{'above' if above else 'at or below'}"
              f" the top-unit ceiling of its units ({default['val_top_unit_ceiling']:.3f}, the "
              "score of the best class per top unit, all a one-hot head input can carry). "
              f"Most accurate Gumbel row on validation: {top['config']} ({top['val_accuracy']:.3f}"
              f" with {top['val_mean_active_concepts']:.2f} active concepts per decision, "
              f"against l1's {l1v['val_accuracy']:.3f} with "
              f"{l1v['val_mean_active_concepts']:.2f}).", ""]
    return lines


def render(data: dict[str, Any]) -> str:
    lines = [START, "", f"Command: `{data['command']}` ({data['seconds']} s; machine "
             f"{data['machine']}). JSON: `benchmarks/results/bench_gumbel_ablation.json`.", ""]
    for name, r in data.items():
        if isinstance(r, dict) and "ablation" in r:
            lines += render_one(name, r, data["seeds"])
    return "\n".join([*lines, END])


def why_not(r: dict[str, Any]) -> str:
    """Why a data set's Gumbel is not competitive, from the validation ablation: the best
    Gumbel row sparser than l1 against l1, and the rows that come closer being as dense."""
    rows = r["ablation"]
    l1 = next(row for row in rows if row["method"] == "l1")
    gumbels = [row for row in rows if row["method"] == "gumbel"]
    sparser = [row for row in gumbels
               if row["val_mean_active_concepts"] < l1["val_mean_active_concepts"]]
    dense = [row for row in gumbels
             if row["val_mean_active_concepts"] >= l1["val_mean_active_concepts"]]
    parts = []
    if sparser:
        best = max(sparser, key=lambda row: row["val_accuracy"])
        parts.append(
            f"on validation every Gumbel configuration sparser than l1 "
            f"({l1['val_mean_active_concepts']:.2f} active concepts) stays at least "
            f"{(l1['val_accuracy'] - best['val_accuracy']) * 100:.1f} points below l1's "
            f"{l1['val_accuracy']:.3f} (best: {best['config']}, {best['val_accuracy']:.3f})")
    if dense:
        top = max(dense, key=lambda row: row["val_accuracy"])
        parts.append(
            f"the closest Gumbel row ({top['config']}, {top['val_accuracy']:.3f}) uses "
            f"{top['val_mean_active_concepts']:.2f} active concepts, no fewer than l1")
    return "; ".join(parts)


def readme_section(data: dict[str, Any]) -> str:
    """README's sentence per data set: the verdict and its numbers, from the JSON."""
    parts = []
    for name, r in data.items():
        if not (isinstance(r, dict) and "ablation" in r):
            continue
        competitive, gap, _ = verdict(r)
        best = r["summary"]["gumbel (best on validation)"]
        l1 = r["summary"]["l1 (ours)"]
        parts.append(
            f"{name}: Gumbel as chosen on validation ({r['chosen_on_validation']}) "
            f"{_pm(best['accuracy'])} against l1 {_pm(l1['accuracy'])} at NEC = 5 "
            f"({gap:.1f} points behind, {best['mean_active_concepts'][0]:.2f} against "
            f"{l1['mean_active_concepts'][0]:.2f} active concepts per decision): "
            f"{'competitive' if competitive else 'not competitive'} by issue 18's bar"
            + ("." if competitive or not why_not(r) else f". Why: {why_not(r)}."))
    return "\n".join([R_START, *[f"- {p}" for p in parts], R_END])


def splice(doc: str, section: str, start: str = START, end: str = END) -> str:
    """``doc`` with the text between the markers replaced (appended with a heading if absent)."""
    if start in doc and end in doc:
        return docblocks.splice(doc, section, start, end)
    return doc.rstrip("\n") + "\n\n## Gumbel layer at its best: ablation (issue 18)\n\n" \
        + section + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    section = render(json.loads(path.read_text(encoding="utf-8")))
    data = json.loads(path.read_text(encoding="utf-8"))
    DOC.write_text(splice(DOC.read_text(encoding="utf-8"), section), encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    if R_START in text:
        README.write_text(splice(text, readme_section(data), R_START, R_END), encoding="utf-8")
    print(f"wrote the Gumbel-ablation section of {DOC} and the verdict in {README}")


if __name__ == "__main__":
    main()
