"""docs/lm.md's ObsProp section from benchmarks/results/bench_lm_obsprop.json.

    python benchmarks/lm_obsprop_tables.py [--write]

Prints the table and the verdict sentences (computed from the numbers); ``--write`` replaces
the block between ``<!-- obsprop:start -->`` and ``<!-- obsprop:end -->`` in docs/lm.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from conceptlab.utils.docblocks import splice_file

ROOT = Path(__file__).resolve().parents[1]
JSON = ROOT / "benchmarks" / "results" / "bench_lm_obsprop.json"
DOC = ROOT / "docs" / "lm.md"
START, END = "<!-- obsprop:start -->", "<!-- obsprop:end -->"
COLS = [("auroc_obsprop", "ObsProp (few prompts' sides)"), ("auroc_probe_few", "probe, few"),
        ("auroc_probe_many", "probe, many"), ("auroc_mean_few", "mean diff, few"),
        ("auroc_mean_many", "mean diff, many"),
        ("cos_obsprop_probe_few", "cos(ObsProp, probe few)"),
        ("cos_obsprop_probe_many", "cos(ObsProp, probe many)")]


def fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"


def verdict(row: str, s: dict[str, dict[str, float]]) -> str:
    ob, few, many = s["auroc_obsprop"], s["auroc_probe_few"], s["auroc_probe_many"]
    if ob["lo"] > few["hi"]:
        vs_few = "beats the few-example probe ({:.3f}; the intervals do not overlap)"
    elif ob["hi"] < few["lo"]:
        vs_few = "falls below the few-example probe ({:.3f}; the intervals do not overlap)"
    else:
        vs_few = "is not separable from the few-example probe ({:.3f}; the intervals overlap)"
    if ob["hi"] < many["lo"]:
        vs_many = "stays below the probe fitted on many examples"
    elif ob["lo"] > many["hi"]:
        vs_many = "even beats the probe fitted on many examples"
    else:
        vs_many = "matches the probe fitted on many examples within the intervals"
    side = " (below 0.5: the component pushes against the label's pronoun)" \
        if ob["mean"] < 0.5 else ""
    return (f"The {row}'s ObsProp vector reaches held-out AUROC {ob['mean']:.3f}{side}; it "
            f"{vs_few.format(few['mean'])} and {vs_many} ({many['mean']:.3f}); its cosine with "
            f"that probe is {s['cos_obsprop_probe_many']['mean']:.3f}.")


def render(res: dict[str, Any]) -> str:
    lines = [f"SmolLM2-135M, observable {res['observable']}, {res['n_prompts']} prompts "
             f"({res['n_occupations']} occupations x {len(res['templates'])} templates), "
             f"train {res['n_train']} / test {res['n_test']} prompts (held-out occupations), "
             f"{res['few_per_class']} labelled prompts per class in the few regime, "
             f"{res['seeds']} draws (mean [95% t-interval]); held-out AUROC of each direction "
             f"and cosines. The observable itself scores the test prompts at AUROC "
             f"{res['observable_test_auroc']:.3f}.", "",
             "| vector | read at | " + " | ".join(c for _, c in COLS) + " |",
             "|---|---|" + "---|" * len(COLS)]
    comps = {row: sorted({r["rows"][row]["component"] for r in res["runs"]})
             for row in res["summary"]}
    for row, s in res["summary"].items():
        read = res["runs"][0]["rows"][row]["read"].split(" at ")[-1]
        name = f"{row} ({', '.join(comps[row])})"
        lines.append(f"| {name} | {read} | " + " | ".join(fmt(s[k]) for k, _ in COLS) + " |")
    first = res["runs"][0]
    cp = first["coupling_top3_heads"]
    pairs = [f"C({a}, {b}) = {cp['matrix'][i][j]:.2f}" for i, a in enumerate(cp["heads"])
             for j, b in enumerate(cp["heads"]) if i != j]
    attr = ", ".join(f"{h['head']} {h['attribution']:+.2f}" for h in first["top_heads"][:3])
    mattr = ", ".join(f"{m['mlp']} {m['attribution']:+.2f}" for m in first["top_mlps"][:2])
    lines += ["", *[verdict(row, s) for row, s in res["summary"].items()], "",
              f"First draw: attributions (female minus male prompts) {attr}; MLPs {mattr}. "
              f"Coupling coefficients between the top heads' feature vectors (y1.y2/|y1|^2): "
              f"{'; '.join(pairs)}.", "",
              f"The paper's LayerNorm rule against the exact RMSNorm Jacobian: the lowest cosine "
              f"over the propagated vectors of every draw is {res['layernorm_cosine_min']:.3f}. "
              f"Run time {res['seconds']:.0f} s."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    text = render(json.loads(JSON.read_text()))
    if not a.write:
        print(text)
        return
    doc = DOC.read_text()
    if START not in doc:
        raise SystemExit(f"{DOC} has no {START} marker")
    splice_file(DOC, f"{START}\n{text}\n{END}", START, END)


if __name__ == "__main__":
    main()
