"""ConSE vs a ridge map vs a contrastive map (LiMBeR) on held-out idsprites images.

For each seed: render idsprites with that seed (train / test streams), carve validation from
train, encode every image once with EfficientNet-Lite0 (one cached backbone pass serves all
three spaces: ConSE reads its logits, the maps its pooled features), fit both maps on the
training captions (each chosen on validation captions), and on the SAME test images measure:

* image -> caption retrieval recall@1/5 (gallery: the distinct test caption texts);
* zero-shot accuracy with the class names as prompts ("small red shape", ...);
* per-concept AUROC of the concept scores (cosine with each concept text) against the
  ground-truth factors, averaged per concept group (colour, size, position, shape, tilt);
* the nonsense-vocabulary control: a scores-based l1 CBM
  (``ConceptBottleneckModel(bank, classes, method="l1", nec=...)``, fitted on train with the
  validation split carved from train) with the 18 real concept texts against 18 random letter
  strings, at NEC=5 and dense.

Mean and 95% interval (Student t) over the seeds. Texts go through MiniLM in every space.

    python benchmarks/bench_align.py [--seeds 0 1 2] [--n-train 2000] [--n-test 500]

Prints a markdown table, writes benchmarks/results/bench_align.{json,md}, a PNG of the
per-concept AUROC and, for the default run, the ``<!-- align:start/end -->`` block of
docs/benchmarks.md: the table, then issue 13's goals and the weak measures in words taken from
the numbers (``goal_words``, ``weak_words``). ``--docs-only`` rewrites that block from the JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.align.evaluate import (
    concept_auroc,
    concept_scores,
    mean_interval,
    nonsense_texts,
)
from conceptlab.align.fit import select_candidate
from conceptlab.align.retrieval import recall_at_k
from conceptlab.bottleneck import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.encoders.base import build_encoder
from conceptlab.metrics import accuracy
from conceptlab.pipeline import encode_split
from conceptlab.utils.docblocks import markers, splice_file
from conceptlab.utils.io import read_json, write_json_atomic, write_text_atomic
from conceptlab.workflows.align import (
    AlignConfig,
    AlignPrepared,
    evaluate_map,
    fit_candidates,
    prepare_align,
    zero_shot_accuracy,
)

RESULTS = Path(__file__).parent / "results"
SPACES = ("conse", "ridge", "contrastive")
MAPS = ("ridge", "contrastive")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = markers("align")
#: issue 13's goals: recall@5 ratio of the contrastive map to ConSE, the AUROC bar for colour
#: and size, and the lead of the real vocabulary over the nonsense one at NEC = 5
RECALL_RATIO, AUROC_BAR, REAL_LEAD = 2.0, 0.9, 0.10
GROUPS = {"colour": range(0, 6), "size": range(6, 8), "position": range(8, 12),
          "shape": range(12, 16), "tilt": range(16, 18)}


def cbm_accuracy(bank: ConceptBank, prep: AlignPrepared, X: dict[str, np.ndarray],
                 nec: float | None, seed: int) -> float:
    model = ConceptBottleneckModel.from_options(bank, prep.dataset.class_names, method="l1",
                                                nec=nec, seed=seed,
                                                options={"show_progress": False})
    y = {k: s.labels for k, s in prep.splits.as_dict().items()}
    model.fit(X["train"], y["train"], X["val"], y["val"])
    return accuracy(y["test"], model.predict(X["test"]))


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = AlignConfig(data="idsprites", seed=seed,
                      data_options={"seed": seed, "n_train": args.n_train, "n_test": args.n_test,
                                    "classes": args.classes},
                      image_options={"image_size": args.image_size},
                      contrastive_epochs=args.epochs)
    prep = prepare_align(cfg)
    t_enc = time.perf_counter() - t0
    cands = fit_candidates(prep)
    maps = {m: select_candidate([c for c in cands if c.method == m]) for m in SPACES[1:]}
    conse = build_encoder("conse", image_size=args.image_size)
    X: dict[str, dict[str, np.ndarray]] = {
        "conse": {k: encode_split(conse, s, prep.cache) for k, s in prep.splits.as_dict().items()}}
    for m, cand in maps.items():
        X[m] = {k: cand.linear_map(prep.features[k]) for k in prep.features}
    test = prep.splits.test
    names = list(test.concept_names or [])
    concept_emb = prep.embed_texts(names)
    nonsense = nonsense_texts(len(names), seed)
    banks = {
        "real": ConceptBank(concept_emb, names, provenance={"encoder": "minilm"}),
        "nonsense": ConceptBank(prep.embed_texts(nonsense), nonsense,
                                provenance={"encoder": "minilm", "method": "nonsense"}),
    }
    rows: dict[str, Any] = {}
    for space in SPACES:
        t1 = time.perf_counter()
        emb_test = X[space]["test"]
        if space == "conse":
            d = prep.data["test"]
            row: dict[str, Any] = recall_at_k(emb_test[prep.kept["test"]], d.text_emb, d.owners)
            row["zero_shot_accuracy"] = zero_shot_accuracy(prep, emb_test)
        else:
            row = evaluate_map(prep, maps[space].linear_map)
            row["chosen"] = maps[space].summary()
        auc = concept_auroc(concept_scores(emb_test, concept_emb), test.concept_labels)
        row["auroc"] = {n: float(a) for n, a in zip(names, auc, strict=True)}
        row["auroc_groups"] = {g: float(np.nanmean(auc[list(ix)])) for g, ix in GROUPS.items()}
        for vocab, bank in banks.items():
            for nec in [*args.necs, None]:
                row[_cbm_key(vocab, nec)] = cbm_accuracy(bank, prep, X[space], nec, seed)
        row["seconds"] = round(time.perf_counter() - t1, 2)
        rows[space] = row
        print(f"seed {seed} {space}: R@5 {row['R@5']:.3f} zs {row['zero_shot_accuracy']:.3f} "
              f"auroc {row['auroc_groups']} cbm real/nonsense "
              f"{[(row[_cbm_key('real', n)], row[_cbm_key('nonsense', n)]) for n in args.necs]}",
              flush=True)
    return {"seed": seed, "rows": rows, "encode_seconds": round(t_enc, 1),
            "encoding": prep.encode_stats, "splits": prep.splits.record,
            "candidates": [c.summary() for c in cands], "nonsense_texts": nonsense,
            "seconds": round(time.perf_counter() - t0, 1)}


def _cbm_key(vocab: str, nec: float | None) -> str:
    return f"cbm_{vocab}_{'dense' if nec is None else f'nec{nec:g}'}"


def metrics_list(necs: list[float]) -> list[tuple[str, str]]:
    out = [("R@1", "recall@1"), ("R@5", "recall@5"), ("zero_shot_accuracy", "zero-shot acc"),
           ("auroc:colour", "AUROC colour"), ("auroc:size", "AUROC size"),
           ("auroc:position", "AUROC position"), ("auroc:shape", "AUROC shape"),
           ("auroc:tilt", "AUROC tilt")]
    for nec in [*necs, None]:
        head = "dense" if nec is None else f"NEC={nec:g}"
        out += [(_cbm_key("real", nec), f"CBM real, {head}"),
                (_cbm_key("nonsense", nec), f"CBM nonsense, {head}")]
    return out


def _value(row: dict[str, Any], key: str) -> float:
    if key.startswith("auroc:"):
        return float(row["auroc_groups"][key.split(":", 1)[1]])
    return float(row[key])


def summarise(runs: list[dict[str, Any]], necs: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for space in SPACES:
        out[space] = {}
        for key, _ in metrics_list(necs):
            vals = [_value(r["rows"][space], key) for r in runs]
            mean, half = mean_interval(vals)
            out[space][key] = {"mean": mean, "ci95": half, "values": vals}
        for nec in [*necs, None]:
            gap = [r["rows"][space][_cbm_key("real", nec)]
                   - r["rows"][space][_cbm_key("nonsense", nec)] for r in runs]
            mean, half = mean_interval(gap)
            out[space][_cbm_key("gap", nec)] = {"mean": mean, "ci95": half, "values": gap}
    return out


def markdown(summary: dict[str, Any], n_seeds: int, necs: list[float]) -> str:
    head = "| measure | " + " | ".join(SPACES) + " |"
    lines = [head, "|---|" + "---|" * len(SPACES)]
    gaps = [(_cbm_key("gap", n), f"real - nonsense, {'dense' if n is None else f'NEC={n:g}'}")
            for n in [*necs, None]]
    for key, label in [*metrics_list(necs), *gaps]:
        cells = [f"{summary[s][key]['mean']:.3f} ± {summary[s][key]['ci95']:.3f}"
                 for s in SPACES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"mean ± 95% interval (Student t) over {n_seeds} seeds")
    return "\n".join(lines)


def _per_seed(runs: list[dict[str, Any]], space: str, key: str) -> list[float]:
    return [_value(r["rows"][space], key) for r in runs]


def _gap(runs: list[dict[str, Any]], space: str, nec: float | None) -> tuple[float, float]:
    """Real minus nonsense vocabulary accuracy of the CBM, paired per seed."""
    return mean_interval([r["rows"][space][_cbm_key("real", nec)]
                          - r["rows"][space][_cbm_key("nonsense", nec)] for r in runs])


def _concept_means(runs: list[dict[str, Any]], space: str) -> dict[str, float]:
    names = list(runs[0]["rows"][space]["auroc"])
    return {n: float(np.nanmean([r["rows"][space]["auroc"][n] for r in runs])) for n in names}


def _range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f}-{hi:.3f}"


def goal_words(runs: list[dict[str, Any]], nec: float = 5.0) -> list[str]:
    """Issue 13's three goals, each met or not, with the numbers that decide it."""
    mean = {(sp, k): float(np.mean(_per_seed(runs, sp, k))) for sp in SPACES
            for k in ("R@5", "auroc:colour", "auroc:size", _cbm_key("real", nec),
                      _cbm_key("nonsense", nec))}
    r_map, r_conse = mean[("contrastive", "R@5")], mean[("conse", "R@5")]
    ratio = r_map / r_conse if r_conse > 0 else float("inf")
    chance = float(np.mean([5 / r["rows"]["contrastive"]["n_gallery_texts"] for r in runs]))
    out = [f"- recall@5 of the contrastive map at least {RECALL_RATIO:g}x ConSE's: "
           f"**{'met' if ratio >= RECALL_RATIO else 'not met'}**, {r_map:.3f} vs {r_conse:.3f} "
           f"({ratio:.0f}x; chance is about {chance:.3f}, ConSE at {r_conse / chance:.1f}x "
           "chance)."]
    both = [sp for sp in SPACES if mean[(sp, "auroc:colour")] >= AUROC_BAR
            and mean[(sp, "auroc:size")] >= AUROC_BAR]
    per = "; ".join(f"{sp}: colour {mean[(sp, 'auroc:colour')]:.3f}, size "
                    f"{mean[(sp, 'auroc:size')]:.3f}" for sp in SPACES)
    out.append(f"- concept AUROC at least {AUROC_BAR:g} for colour and size: "
               + (f"**met by {', '.join(both)}**" if both else "**not met** by any space")
               + f" ({per}).")
    gaps = {sp: _gap(runs, sp, nec) for sp in SPACES}
    dense = {sp: _gap(runs, sp, None)[0] for sp in SPACES}
    lead = [sp for sp in SPACES if gaps[sp][0] >= REAL_LEAD]
    out.append(f"- the real vocabulary at least {REAL_LEAD * 100:.0f} points above the nonsense "
               f"one at NEC={nec:g}: "
               + (f"**met in {', '.join(lead)}**" if lead else "**not met**") + ". Real minus "
               "nonsense, paired per seed: "
               + "; ".join(f"{sp} {gaps[sp][0] * 100:+.1f} ± {gaps[sp][1] * 100:.1f} points at "
                           f"NEC={nec:g}, {dense[sp] * 100:+.1f} dense" for sp in SPACES) + ".")
    real = [mean[(sp, _cbm_key("real", nec))] for sp in MAPS]
    nonsense = [mean[(sp, _cbm_key("nonsense", nec))] for sp in MAPS]
    if not lead and min(real) >= 0.97:
        n_texts = len(runs[0]["nonsense_texts"])
        out.append(f"  In the map spaces the real vocabulary is at the ceiling ({_range(real)}), "
                   "so a lead can only come from the nonsense vocabulary failing, and it does "
                   f"not: its {n_texts} fixed directions still carry what the classes need "
                   f"({_range(nonsense)}).")
    return out


def weak_words(runs: list[dict[str, Any]]) -> list[str]:
    """The weakest concept groups of each map, the extreme concepts, and where ridge trails."""
    groups = list(runs[0]["rows"]["contrastive"]["auroc_groups"])
    g = {sp: {k: float(np.mean(_per_seed(runs, sp, f"auroc:{k}"))) for k in groups}
         for sp in SPACES}
    weak = "; ".join(sp + ": " + ", ".join(f"{k} {v:.2f}" for k, v in
                                          sorted(g[sp].items(), key=lambda kv: kv[1])[:2])
                     for sp in MAPS)
    c = sorted(_concept_means(runs, "contrastive").items(), key=lambda kv: kv[1])
    conse = max(_concept_means(runs, "conse").items(), key=lambda kv: kv[1])
    measures = [("R@5", "recall@5"), ("zero_shot_accuracy", "zero-shot accuracy"),
                *[(f"auroc:{k}", f"{k} AUROC") for k in groups]]
    ahead = [label for key, label in measures
             if np.mean(_per_seed(runs, "ridge", key)) >= np.mean(_per_seed(runs, "contrastive",
                                                                             key))]
    return [f"Weakest concept groups (mean AUROC): {weak}. The contrastive map's lowest "
            "concepts: " + ", ".join(f'"{n}" {v:.2f}' for n, v in c[:3])
            + "; its highest: " + ", ".join(f'"{n}" {v:.2f}' for n, v in c[-2:][::-1])
            + f". ConSE's best concept is \"{conse[0]}\" at {conse[1]:.2f}. The ridge map "
            + ("trails the contrastive map on every measure" if not ahead else
               f"is at least as good as the contrastive map only on {', '.join(ahead)}")
            + "."]


def docs_block(result: dict[str, Any]) -> str:
    """The generated part of docs/benchmarks.md's joint-space section."""
    runs = result["runs"]
    necs = [float(n) for n in result["args"].get("necs", [5.0])]
    return "\n".join([
        START, "", markdown(summarise(runs, necs), len(runs), necs), "",
        f"Measured in {result['seconds']:.0f} s on {result['machine']['cpus']} cores "
        "(encoding, or reading the cached encodings, "
        f"{sum(r.get('encode_seconds', 0.0) for r in runs):.0f} s of it).", "",
        "Goals of issue 13:", *goal_words(runs, necs[0]), "", *weak_words(runs), "", END])


def plot_auroc(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs[0]["rows"]["conse"]["auroc"])
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.27
    for j, space in enumerate(SPACES):
        vals = np.array([[r["rows"][space]["auroc"][n] for n in names] for r in runs])
        ax.bar(np.arange(len(names)) + (j - 1) * width, np.nanmean(vals, 0), width,
               yerr=np.nanstd(vals, 0), label=space)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.axhline(0.9, color="green", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("AUROC (concept text vs ground truth)")
    ax.set_ylim(0.3, 1.02)
    ax.set_title("idsprites, held-out images: does the concept text's score find the concept?")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--classes", default="color+size", help="idsprites class rule")
    parser.add_argument("--necs", type=float, nargs="+", default=[5.0])
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--docs-only", action="store_true",
                        help="rewrite the docs block from benchmarks/results/bench_align.json")
    args = parser.parse_args()
    if args.docs_only:
        splice_file(DOCS, docs_block(read_json(RESULTS / "bench_align.json")), START, END)
        print(f"wrote the joint-space block into {DOCS}")
        return
    t0 = time.perf_counter()
    runs = [one_seed(s, args) for s in args.seeds]
    summary = summarise(runs, args.necs)
    table = markdown(summary, len(runs), args.necs)
    stem = "bench_align" + (f"_{args.tag}" if args.tag else "")
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"summary": summary, "runs": runs, "args": {**vars(args), "out": str(args.out)},
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform()},
              "seconds": round(time.perf_counter() - t0, 1)}
    write_json_atomic(args.out / f"{stem}.json", result)
    write_text_atomic(args.out / f"{stem}.md", table + "\n")
    plot_auroc(runs, args.out / f"{stem}_auroc.png")
    if not args.tag and args.out == RESULTS and args.necs == [5.0]:
        splice_file(DOCS, docs_block(result), START, END)
    print(f"wrote {args.out / f'{stem}.json'} in {result['seconds']} s")


if __name__ == "__main__":
    main()
