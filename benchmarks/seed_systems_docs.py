"""Write the seed systems' README rows and docs/benchmarks.md section from benchmark JSON.

Reads benchmarks/results/bench_match.json, bench_lancet.json and (when present)
bench_cab.json and bench_shift.json; every number and every verdict word ("beats", "does not
beat", ...) below is computed from them, so a rerun of a benchmark changes the words.
Replaces the text between ``<!-- seed-systems:start -->`` and ``<!-- seed-systems:end -->``
in README.md and in docs/benchmarks.md, and between ``<!-- shift-bench:start -->`` and
``<!-- shift-bench:end -->`` in docs/seed_systems.md (bench_shift.md as the benchmark wrote it).

    python benchmarks/seed_systems_docs.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conceptlab.utils.docblocks import splice_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- seed-systems:start -->", "<!-- seed-systems:end -->"
SHIFT_START, SHIFT_END = "<!-- shift-bench:start -->", "<!-- shift-bench:end -->"


def _iv(pair: list[float]) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def verdict(diff: list[float], better: str, worse: str, same: str) -> str:
    """Word for a paired difference whose 95% interval excludes 0 or not."""
    lo, hi = diff[0] - diff[1], diff[0] + diff[1]
    return better if lo > 0 else worse if hi < 0 else same


def match_row(match: dict[str, Any]) -> str:
    parts = []
    for ds in match["datasets"]:
        s = ds["summary"]
        vs_cos = verdict(ds["paired_explicit_minus_cosine_nDCG@10"], "beats", "is below",
                         "ties")
        vs_dense = verdict(ds["paired_explicit_minus_dense_nDCG@10"], "beats", "is below",
                           "ties")
        parts.append(f"{ds['data']}: nDCG@10 {_iv(s['explicit']['nDCG@10'])}, {vs_cos} "
                     f"cosine ({s['cosine']['nDCG@10'][0]:.3f}), {vs_dense} the dense map "
                     f"({s['dense']['nDCG@10'][0]:.3f}); unit fidelity "
                     f"{s['explicit']['unit_fidelity_median'][0]:.2f}")
    return ("| `conceptlab match` (SESA, LinkedIn) | smaller analogue: frozen encoder, "
            "concept layer started from a ConceptBank and trained with a pairwise ranking "
            "loss, grounded to its names | " + "; ".join(parts) + " |")


def lancet_row(lancet: dict[str, Any]) -> str:
    s = lancet["summary"]
    pres = verdict(s["paired_presence_minus_cosine"], "beats", "is below", "ties")
    tr = s["edits"]["transplant"]
    d = s["paired_transplant_minus_best_fixed_both"]
    vs = verdict(d, "beats", "is below", "matches")
    return ("| `conceptlab lancet` (Concept Lancet, Luo et al.) | decomposition and transplant "
            "as in the paper, on a caption-trained image space (no diffusion model, no "
            f"CoLan-150K: {lancet['n_dictionary']} concepts x 5 texts) | presence AUROC "
            f"{_iv(s['presence_auroc'])}, {pres} cosine ({s['cosine_auroc'][0]:.3f}) with "
            f"{s['active_per_input'][0]:.1f} active concepts per image; "
            f"transplant success {tr['success'][0]:.3f} / consistency "
            f"{tr['consistency'][0]:.3f}, {vs} the best fixed strength chosen on test "
            f"({s['best_fixed_by_test_both']}) without tuning one |")


def cab_row(cab: dict[str, Any] | None) -> str:
    head = "| `conceptlab cab` (concept association bias, Yamada et al.) | "
    if cab is None:
        return head + "not measured | - |"
    s, levels = cab["summary"], cab["levels"]
    lo, hi = s[f"{levels[0]:g}"], s[f"{levels[-1]:g}"]
    grows = verdict(s["paired_cab_highest_minus_lowest"], "grows", "shrinks",
                    "does not change measurably")
    fill = verdict(s["paired_fill_rate_highest_minus_lowest"], "grows", "shrinks",
                   "does not change measurably")
    return (head + "smaller analogue: drawn two-shape scenes, caption maps fitted at chosen "
            "association strengths instead of CLIP | CAB (other object's colour minus the "
            f"one-object baseline) {_iv(lo['cab'])} at {levels[0]:g} red circles, "
            f"{_iv(hi['cab'])} at {levels[-1]:g}: the bias exists and {grows} with the "
            f"association; 'red' named for a non-red circle {_iv(lo['fill_rate'])} -> "
            f"{_iv(hi['fill_rate'])} ({fill}) |")


def shift_row(shift: dict[str, Any] | None) -> str:
    head = ("| `conceptlab shift` / `run_shift` (fine-tuning shift vectors, Khayatan et al.) "
            "| ")
    if shift is None:
        return head + "library and Python twin; benchmark not measured | - |"
    ag = shift["agreement_recovery"]
    c = ag["tuned head, concept shift vectors"]
    r = ag["tuned head, random directions (control)"]
    beats = "beat" if c[0] - c[1] > r[0] + r[1] else "do not separate from"
    cos = sum(x["mean_improved_cosine"] for x in shift["shift_stats"]) / len(shift["shift_stats"])
    return (head + "smaller analogue: EfficientNet-Lite0's last stage fine-tuned briefly on "
            "Fashion-MNIST instead of a multimodal LLM; k-means concepts, shift vectors and "
            "recovery as the reference code | shift vectors reproduce "
            f"{_iv(c)} of the decisions fine-tuning changed, random directions of the same "
            f"norms {_iv(r)}: they {beats} the control; shifted concepts {cos:+.3f} closer in "
            "cosine to the fine-tuned concepts than the originals" + changes_part(shift) + " |")


def changes_part(shift: dict[str, Any]) -> str:
    """The concepts kept, lost and reached per seed, when the benchmark counted them."""
    cs = shift.get("changes_summary")
    if not cs:
        return ""
    reached = "none" if cs["reached"][0] == 0 else f"{cs['reached'][0]:.1f}"
    return (f"; of {shift['k']} concepts {cs['kept'][0]:.1f} kept and {cs['lost'][0]:.1f} "
            f"lost (= gained) per seed at cosine >= {shift['threshold']:g}, {reached} of the "
            "lost reached by its shift vector")


def readme_block(match: dict[str, Any], lancet: dict[str, Any],
                 cab: dict[str, Any] | None, shift: dict[str, Any] | None = None) -> str:
    return "\n".join([
        START, "", "| system (paper) | what runs here | measured (3 seeds, mean ± 95% "
        "interval; `docs/benchmarks.md`) |", "|---|---|---|",
        match_row(match), lancet_row(lancet), cab_row(cab), shift_row(shift), "", END])


def docs_block(match_md: str, lancet_md: str, match: dict[str, Any],
               lancet: dict[str, Any], cab_md: str | None = None,
               shift_md: str | None = None) -> str:
    cab_part = [] if cab_md is None else [
        "### Concept association bias (`benchmarks/bench_cab.py`)", "", "```bash",
        "python benchmarks/bench_cab.py", "```", "", cab_md.strip(), "",
        "![bias against association](../benchmarks/results/bench_cab.png)", ""]
    shift_part = [] if shift_md is None else [
        "### Fine-tuning shift vectors (`benchmarks/bench_shift.py`)", "", "```bash",
        "flock /tmp/conceptlab-heavy.lock python benchmarks/bench_shift.py", "```", "",
        shift_md.strip(), "",
        "![concepts gained and lost in fine-tuning](../benchmarks/results/bench_shift.png)", ""]
    return "\n".join([
        START, "",
        "## Seed systems: explicit matching, Concept Lancet, association bias, fine-tuning "
        "shift (issue 24)", "",
        "### Explicit concept matching, after SESA (`benchmarks/bench_match.py`)", "",
        "```bash", "conceptlab align --data idsprites --out MAP   # seed 0, defaults; --map MAP",
        match["command"], "```", "",
        "Data split fixed (seed 0, validation carved from train); matcher seeds 0, 1, 2; every "
        "matcher's epoch chosen on validation nDCG@10; leave-one-out same-class retrieval on "
        "test. R@10 is the share of ALL same-class items in the top 10 (small where a class "
        "holds hundreds).", "", match_md.strip(), "",
        "![nDCG@10 per matcher](../benchmarks/results/bench_match.png)", "",
        "### Concept Lancet (`benchmarks/bench_lancet.py`)", "", "```bash",
        "conceptlab align --data idsprites --out MAP_ROOT/seed0   # and -D seed=s --seed s",
        lancet["command"], "```", "", lancet_md.strip(), "",
        "![edit success against consistency](../benchmarks/results/bench_lancet.png)", "",
        *cab_part, *shift_part, END])


def replace_block(path: Path, block: str, anchor: str | None, start: str = START,
                  end: str = END) -> None:
    splice_file(path, block, start, end, before=anchor)


def main() -> None:
    match = json.loads((RESULTS / "bench_match.json").read_text())
    lancet = json.loads((RESULTS / "bench_lancet.json").read_text())
    cab_path = RESULTS / "bench_cab.json"
    cab = json.loads(cab_path.read_text()) if cab_path.is_file() else None
    shift_path = RESULTS / "bench_shift.json"
    shift = json.loads(shift_path.read_text()) if shift_path.is_file() else None
    replace_block(ROOT / "README.md", readme_block(match, lancet, cab, shift), "## From Python")
    replace_block(ROOT / "docs" / "benchmarks.md",
                  docs_block((RESULTS / "bench_match.md").read_text(),
                             (RESULTS / "bench_lancet.md").read_text(), match, lancet,
                             (RESULTS / "bench_cab.md").read_text() if cab else None,
                             (RESULTS / "bench_shift.md").read_text() if shift else None), None)
    if shift:
        replace_block(ROOT / "docs" / "seed_systems.md", "\n".join([
            SHIFT_START, "`flock /tmp/conceptlab-heavy.lock python benchmarks/bench_shift.py`, "
            "copied from `benchmarks/results/bench_shift.md` (written by the benchmark from its "
            "JSON):", "", (RESULTS / "bench_shift.md").read_text().strip(), "",
            "![concepts gained and lost in fine-tuning](../benchmarks/results/bench_shift.png)",
            SHIFT_END]), None,
            SHIFT_START, SHIFT_END)


if __name__ == "__main__":
    main()
