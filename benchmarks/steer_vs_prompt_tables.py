"""docs/lm.md's steering-versus-prompting table and README's verdict, from the benchmark JSON.

    python benchmarks/steer_vs_prompt_tables.py [--write]

Reads benchmarks/results/bench_steer_vs_prompt.json; ``--write`` replaces the blocks between
``<!-- steer-vs-prompt:start -->`` / ``:end -->`` in docs/lm.md and README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from conceptlab.utils.docblocks import splice_file

ROOT = Path(__file__).resolve().parents[1]
JSON = ROOT / "benchmarks" / "results" / "bench_steer_vs_prompt.json"
START, END = "<!-- steer-vs-prompt:start -->", "<!-- steer-vs-prompt:end -->"
NAMES = {"unsteered": "unsteered", "prompting": "prompting (\"Talk about X.\")",
         "mean_diff": "mean difference", "pca_diff": "PCA of pair differences",
         "probe": "logistic probe", "direct_path": "direct-path observable"}


def fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"


def verdict(res: dict[str, Any]) -> str:
    d = {m: s for m, s in res["aggregate_minus_prompting"].items() if m != "unsteered"}
    above = [m for m, s in d.items() if s["lo"] > 0]
    below = [m for m, s in d.items() if s["hi"] < 0]
    tied = [m for m in d if m not in above and m not in below]
    n = len(res["concepts"])
    if above:
        head = (f"{', '.join(NAMES[m] for m in above)} beat{'s' if len(above) == 1 else ''} "
                f"prompting on the aggregate score")
    else:
        head = "No steering method beats prompting on the aggregate score"
    parts = [f"{head} (SmolLM2-135M-Instruct, {n} concepts, held-out instructions, 95% "
             f"t-intervals over concepts of the difference)"]
    if below:
        parts.append(f"{', '.join(NAMES[m] for m in below)} score{'s' if len(below) == 1 else ''}"
                     f" below it")
    if tied:
        parts.append(f"{', '.join(NAMES[m] for m in tied)} cannot be told apart from it")
    best = max(d, key=lambda m: d[m]["mean"])
    return "; ".join(parts) + (f". Closest: {NAMES[best]}, {d[best]['mean']:+.3f} "
                               f"[{d[best]['lo']:+.3f}, {d[best]['hi']:+.3f}].")


def table(res: dict[str, Any]) -> str:
    lines = [f"Steering at `{res['point']}` (strength x {res['scale']:.1f}, the median token "
             f"norm there; strengths {res['strengths']}, chosen per concept on "
             f"{res['n_select']} instructions), {len(res['instructions']) - res['n_select']} "
             f"held-out instructions, {res['max_new_tokens']} new tokens, {len(res['concepts'])} "
             f"concepts; judge {res['judge']}; mean [95% t-interval] over concepts.", "",
             "| method | concept | instruction | fluency | aggregate | aggregate - prompting |",
             "|---|---|---|---|---|---|"]
    for m, s in res["summary"].items():
        diff = res["aggregate_minus_prompting"].get(m)
        lines.append(f"| {NAMES.get(m, m)} | {fmt(s['concept'])} | {fmt(s['instruction'])} | "
                     f"{fmt(s['fluency'])} | {fmt(s['aggregate'])} | "
                     f"{fmt(diff) if diff else '-'} |")
    lines += ["", verdict(res), f"Run time {res['seconds']:.0f} s."]
    return "\n".join(lines)


def replace(path: Path, text: str) -> None:
    doc = path.read_text()
    if START not in doc:
        raise SystemExit(f"{path} has no {START} marker")
    splice_file(path, f"{START}\n{text}\n{END}", START, END)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    res = json.loads(JSON.read_text())
    if not a.write:
        print(table(res))
        return
    replace(ROOT / "docs" / "lm.md", table(res))
    replace(ROOT / "README.md", verdict(res) + " (`benchmarks/bench_steer_vs_prompt.py`, "
            "docs/lm.md)")


if __name__ == "__main__":
    main()
