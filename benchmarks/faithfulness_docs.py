"""Write the faithfulness tables into docs/benchmarks.md from the benchmark's result files.

    .venv/bin/python benchmarks/faithfulness_docs.py

Reads ``benchmarks/results/bench_faithfulness_{robots,idsprites,fashion}.md`` (what
``bench_faithfulness.py --only SECTION`` wrote, words and tables generated from its numbers) and
replaces the block between ``<!-- faithfulness:start -->`` and ``<!-- faithfulness:end -->``;
from the JSON files beside them it writes README's headline table and its words between
``<!-- faithfulness-headline:start -->`` and ``:end -->``. A section whose file is missing is
named as not rerun, never filled in by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.faithfulness.claims import t_interval
from conceptlab.utils.docblocks import markers, splice_file

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
README = DOC.parents[1] / "README.md"
START, END = markers("faithfulness")
H_START, H_END = markers("faithfulness-headline")
#: (README label, result file section, key path inside its JSON)
SPACES = (("ConSE, Fashion-MNIST (10k train, full 10k test)", "fashion", ("fashion_mnist",)),
          ("caption-trained linear map, idsprites shapes", "idsprites",
           ("idsprites", "linear map (LiMBeR)")),
          ("ConSE, idsprites shapes", "idsprites", ("idsprites", "ConSE")),
          ("MiniLM, robot texts", "robots", ("robots_text",)))
SECTIONS = ("robots", "idsprites", "fashion")


def block(results: Path = RESULTS) -> str:
    parts = [START, ""]
    for name in SECTIONS:
        md = results / f"bench_faithfulness_{name}.md"
        js = md.with_suffix(".json")
        if not md.is_file():
            parts += [f"Section `{name}`: not rerun since the faithful references landed "
                      f"(`bench_faithfulness.py --only {name}` writes it).", ""]
            continue
        seconds = json.loads(js.read_text(encoding="utf-8")).get("seconds") if js.is_file() \
            else None
        parts += [md.read_text(encoding="utf-8").strip(), ""]
        if js.is_file():
            notes = failed_control_notes(json.loads(js.read_text(encoding="utf-8")))
            parts += [*(f"- {n}" for n in notes), ""] if notes else []
        if seconds is not None:
            parts += [f"(`--only {name}`: {seconds / 60:.0f} min on this machine.)", ""]
    return "\n".join([*parts, END])


def _tables(node: Any, label: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every result table (a dict with ``per_seed``) below ``node``, with its label (the keys
    leading to it, joined)."""
    if not isinstance(node, dict):
        return []
    if "per_seed" in node:
        return [(label, node)]
    return [t for k, v in node.items() for t in _tables(v, f"{label}, {k}" if label else k)]


def failed_control_notes(record: dict[str, Any]) -> list[str]:
    """One line per row whose random-bank control refits could not all be fitted (read from
    the rows' ``faithfulness.failed_controls``): why its random-bank gap may read "-"."""
    found: dict[tuple[str, str, str], list[tuple[list[str], int]]] = {}
    for label, table in (t for section in record.values() for t in _tables(section)):
        for rows in table["per_seed"].values():
            for r in rows:
                f = r.get("faithfulness") or {}
                if f.get("failed_controls"):
                    head = "dense" if r.get("nec_requested") is None else \
                        f"NEC={r['nec_requested']:g}"
                    found.setdefault((label, r["method"], head), []).append(
                        (f["failed_controls"], int(f.get("n_control_banks", 0))))
    out = []
    for (label, method, head), per_seed in found.items():
        failed = sum(len(f) for f, _ in per_seed)
        total = failed + sum(k for _, k in per_seed)
        where = f"{label}: " if label else ""
        out.append(f"{where}{method} ({head}): {failed} of {total} control refits over "
                   f"{len(per_seed)} seeds could not be fitted (the random-bank gap needs at "
                   f"least 2 per seed); first: {per_seed[0][0][0]}")
    return out


def _interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% t half-width of the finite values (half-width 0 for fewer than two)."""
    mean, _, hi = t_interval(values)
    return mean, (hi - mean) if np.isfinite(hi) else 0.0


def _fmt(pair: Any, digits: int = 3) -> str:
    if not pair or not np.isfinite(pair[0]):
        return "-"
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def _best_grounded(table: dict[str, Any]) -> str:
    """Our text-grounded CBM with the best mean validation accuracy at NEC = 5."""
    val: dict[str, list[float]] = {}
    for rows in table["per_seed"].values():
        for r in rows:
            if r.get("kind") == "ours" and r.get("nec_requested") == 5.0 \
                    and r.get("objective") != "supervised" and "val_accuracy" in r \
                    and (r.get("options") or {}).get("cbl.grounding", 1.0) > 0:
                val.setdefault(r["method"], []).append(r["val_accuracy"])
    return max(val, key=lambda m: float(np.mean(val[m])))


def _paired(table: dict[str, Any], a: tuple[str, Any], b: tuple[str, Any]) -> tuple[float, float]:
    diffs = []
    for rows in table["per_seed"].values():
        by = {(r["method"], r.get("nec_requested")): r["accuracy"] for r in rows}
        if a in by and b in by:
            diffs.append(by[a] - by[b])
    return _interval(diffs)


def headline_row(label: str, table: dict[str, Any]) -> tuple[str, str]:
    """README's table row for one space and the sentence that reads it."""
    entries = {(e["method"], e["nec"]): e for e in table["summary"]}
    best = _best_grounded(table)
    b = entries[(best, 5.0)]
    probe = entries.get(("linear-probe", None))
    refs = [e for e in table["summary"] if e["kind"] == "reference" and e["nec"] == 5.0
            and np.isfinite(e["accuracy"][0])]
    random = next((e for e in refs if e["method"].startswith("random CBL")), None)
    faithful_refs = [e for e in refs if e.get("faithful_cbm") and e is not random]
    best_ref = max(faithful_refs, key=lambda e: e["accuracy"][0]) if faithful_refs else None
    gap, half = _paired(table, (best, 5.0), ("linear-probe", None))
    cells = [label, f"{_fmt(b['accuracy'])} ({best})",
             _fmt(probe["accuracy"]) if probe else "-",
             _fmt(b.get("unit_fidelity_median"), 2),
             f"{_fmt(b.get('random_bank_gap'), 3)}", _fmt(b.get("concept_auroc_mean"), 2),
             f"{_fmt(best_ref['accuracy'])} ({best_ref['method']})" if best_ref else "none",
             _fmt(random["accuracy"]) if random else "-"]
    words = (f"{label}: the grounded CBM is {abs(gap) * 100:.1f} ± {half * 100:.1f} points "
             f"{'below' if gap < 0 else 'above'} the dense probe and "
             f"{'meets' if b.get('faithful_cbm') else 'misses'} the faithful-CBM bar; "
             + (f"the most accurate faithful reference at NEC = 5 is {best_ref['method']} "
                f"({best_ref['accuracy'][0]:.3f})" if best_ref else
                "no reference meets the faithful-CBM bar at NEC = 5")
             + (f", and VLG-CBM's random baseline reaches {random['accuracy'][0]:.3f}"
                if random else "") + ".")
    return "| " + " | ".join(cells) + " |", words


def headline(results: Path = RESULTS) -> str | None:
    """README's block (a space whose section was not rerun says so), or None while no
    section's JSON exists."""
    rows, words = [], []
    for label, section, keys in SPACES:
        path = results / f"bench_faithfulness_{section}.json"
        if not path.is_file():
            words.append(f"- {label}: not rerun since the faithful references landed "
                         f"(`bench_faithfulness.py --only {section}`).")
            continue
        table: Any = json.loads(path.read_text(encoding="utf-8"))
        for key in keys:
            table = table[key]
        row, said = headline_row(label, table)
        rows.append(row)
        words.append(f"- {said}")
    if not rows:
        return None
    return "\n".join([
        H_START, "",
        "| space, data | best grounded CBM at NEC = 5 (chosen on validation) | dense linear "
        "probe | unit fidelity | random-bank gap | concept AUROC | best faithful reference at "
        "NEC = 5 | random CBL (VLG-CBM baseline) at NEC = 5 |",
        "|---|---|---|---|---|---|---|---|", *rows, "", *words, "", H_END])


def main() -> None:
    splice_file(DOC, block(), START, END)
    head = headline()
    if head is not None:
        splice_file(README, head, H_START, H_END)
    print(f"wrote the faithfulness tables into {DOC}")


if __name__ == "__main__":
    main()
