"""The concept-XAI benchmark metrics (Aysel et al. 2025, arXiv:2501.19271: concept global
importance CGIM1-3, concept existence CEM@l, concept location CLM@l with CoAM) for the CBMs
conceptlab fits on idsprites through the caption-trained linear map (the main job's shapes).

Per seed s (0, 1, 2): the map EfficientNet-Lite0 -> MiniLM fitted on the shapes' captions with
seed s (``conceptlab align``, cached as the demo caches it), the grounded sparse CBM the demo
shows ("l1, scores CBL, grounded") at NEC = 5 and dense, fitted with seed s on the official
train split (validation carved from train), measured on the official test split. Ground truth:
the 20 concept labels per image (``V`` from the training labels) and each shape's centre pixel
(every concept of an image lies on its one shape). CoAM: each unit's direction pulled back
through the map into the last 7 x 7 x 1280 EfficientNet map, upsampled to the 64 x 64 image.
Chance rows: a random concept ranking (CEM = mean share of concepts present) and a random
region (CLM = that share x alpha / 12).

    python benchmarks/bench_xai_metrics.py [--seeds 0 1 2]

Writes benchmarks/results/bench_xai_metrics.{json,md}; ``--docs`` also rewrites the section
between the markers in docs/benchmarks.md from the JSON (``--from-json`` skips the run).
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
START, END = "<!-- xai-metrics:start -->", "<!-- xai-metrics:end -->"
MODEL = "l1, scores CBL, grounded"
NECS: dict[str, float | None] = {"NEC = 5": 5.0, "dense": None}
COLUMNS = ("accuracy", "cgim1", "cgim2", "cgim3", "cem@1", "cem@3", "clm@1,a=1", "clm@1,a=3",
           "clm@3,a=3")
HEADERS = {"accuracy": "test accuracy", "cgim1": "CGIM1 (weights)",
           "cgim2": "CGIM2 (mean activations)", "cgim3": "CGIM3 (both)",
           "cem@1": "CEM@1", "cem@3": "CEM@3", "clm@1,a=1": "CLM@1, α=1",
           "clm@1,a=3": "CLM@1, α=3", "clm@3,a=3": "CLM@3, α=3"}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    from scipy import stats

    a = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 \
        else float("nan")
    return float(a.mean()), float(half)


def markdown(result: dict[str, Any]) -> str:
    """The table and the sentences, from the JSON's numbers only."""
    head = "| model | " + " | ".join(HEADERS[c] for c in COLUMNS) + " |"
    lines = [head, "|---|" + "---|" * len(COLUMNS)]
    for name, summ in result["summary"].items():
        lines.append(f"| {name} | " + " | ".join(f"{summ[c][0]:.3f} ± {summ[c][1]:.3f}"
                                               for c in COLUMNS) + " |")
    ch = result["chance"]
    lines.append("| chance (random ranking / region) | - | - | - | - | "
                 f"{ch['cem']:.3f} | {ch['cem']:.3f} | {ch['clm,a=1']:.3f} | "
                 f"{ch['clm,a=3']:.3f} | {ch['clm,a=3']:.3f} |")
    return "\n".join(lines) + "\n\n" + prose(result) + "\n"


def prose(result: dict[str, Any]) -> str:
    """Sentences that read the table (numbers from the JSON, verdicts from the intervals)."""
    ch = result["chance"]
    parts = []
    for name, s in result["summary"].items():
        cem, half = s["cem@1"]
        clm, lhalf = s["clm@1,a=3"]
        exist = "above" if cem - half > ch["cem"] else "not above"
        locate = "above" if clm - lhalf > ch["clm,a=3"] else "not above"
        parts.append(f"{name}: its most important concept for the predicted class is present "
                     f"in the image {cem:.0%} of the time ({exist} the {ch['cem']:.0%} of a "
                     f"random concept), and its CoAM's top quarter covers the shape for "
                     f"{clm:.0%} of images ({locate} the {ch['clm,a=3']:.0%} of a random "
                     f"region); CGIM1 {s['cgim1'][0]:.2f} (1 = its weights follow where "
                     f"each concept occurs across classes).")
    return "Read it plainly: " + " ".join(parts)


def docs_section(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section (between the markers), written from the JSON."""
    return (f"{START}\n\n## Concept existence, location and global importance (Aysel et al. "
            f"2025) on idsprites (`benchmarks/bench_xai_metrics.py`, issue 22)\n\n"
            f"`{result['command']}` ({result['seconds']:.0f} s under the shared lock). "
            f"idsprites through the caption-trained map (EfficientNet-Lite0 -> MiniLM), "
            f"{result['n_train']} train / {result['n_test']} test shapes, "
            f"{result['n_concepts']} ground-truth concepts, seeds "
            f"{', '.join(map(str, result['seeds']))} (map and CBM), mean ± 95% t-interval; "
            f"CEM and CLM over all test images. Definitions: "
            f"`conceptlab.faithfulness.xai_metrics`. Table: "
            f"`benchmarks/results/bench_xai_metrics.md`.\n\n{markdown(result)}\n"
            f"![CEM and CLM per model against chance](../benchmarks/results/"
            f"bench_xai_metrics.png)\n\n{END}")


def write_docs(result: dict[str, Any], path: Path = DOCS) -> None:
    """Replace (or append) the marked section of docs/benchmarks.md."""
    splice_file(path, docs_section(result), START, END)


def spatial_features(encoder: Any, images: list[Any], batch: int = 32) -> np.ndarray:
    """The image encoder's last map before pooling, (N, 7, 7, 1280), for EfficientNet."""
    import torch

    out = []
    with torch.no_grad():
        for a in range(0, len(images), batch):
            x = encoder.preprocess(images[a:a + batch])
            out.append(encoder.model.forward_features(x).permute(0, 2, 3, 1).float().numpy())
    return np.concatenate(out)


def run(seeds: list[int], n_train: int, n_test: int, cache_dir: str | None) -> dict[str, Any]:
    from conceptlab.data.base import build_dataset
    from conceptlab.data.idsprites import centre_pixel
    from conceptlab.faithfulness.xai_metrics import cbm_xai_metrics, concept_class_matrix
    from conceptlab.workflows.cbm import fit_cbm
    from conceptlab.workflows.concepts import concept_source
    from conceptlab.workflows.demo_sprites import sprites_map
    from conceptlab.workflows.prepare import RunConfig, prepare
    from conceptlab.workflows.variants import variant

    t0 = time.perf_counter()
    options = {"n_train": n_train, "n_test": n_test}
    dataset: Any = build_dataset("idsprites", **options)
    v = variant(MODEL)
    rows: dict[str, list[dict[str, Any]]] = {f"{MODEL}, {k}": [] for k in NECS}
    E: np.ndarray | None = None
    chance: dict[str, float] = {}
    record: dict[str, Any] = {}
    for seed in seeds:
        prep = prepare(RunConfig(data="idsprites", encoder=sprites_map(cache_dir, options, seed),
                                 seed=seed, cache_dir=cache_dir, data_options=options))
        src = concept_source(prep, "auto")
        test, train = prep.splits.test, prep.splits.train
        factors = dataset.factors("test")
        size = test[0].size[0]
        centres = np.array([centre_pixel(factors[int(i)], size) for i in test.indices])
        if E is None:  # the same test images for every seed: the backbone runs once
            E = spatial_features(prep.encoder.image_encoder, test.items(0, len(test)))
            pooled = prep.encoder.map(E.mean((1, 2)))
            record["pooled_check_max_abs_diff"] = float(np.abs(pooled - prep.X["test"]).max())
        for label, nec in NECS.items():
            model, row = fit_cbm(prep, src, v.objective, nec, v.options, seed=seed,
                                 controls=False)
            cols = [list(test.concept_names).index(n) for n in model.concept_names]
            present = test.concept_labels[:, cols] > 0.5
            V = concept_class_matrix(train.concept_labels[:, cols], prep.y["train"],
                                     len(prep.class_names))
            m = cbm_xai_metrics(model, prep.X["test"], prep.y["test"], present, V, E,
                                prep.encoder.map.W, prep.encoder.map.sigma, centres, size)
            m.update(seed=seed, accuracy=row["accuracy"], nec=row["nec"],
                     concept_names=list(model.concept_names))
            rows[f"{MODEL}, {label}"].append(m)
            chance = m.pop("chance")
            print(seed, label, {c: round(m[c], 3) for c in COLUMNS}, flush=True)
        record.update(n_train=len(prep.y["train"]), n_test=len(prep.y["test"]),
                      n_concepts=len(src.bank), splits=prep.splits.record)
    summary = {name: {c: interval([r[c] for r in rs]) for c in COLUMNS}
               for name, rs in rows.items()}
    return {"benchmark": "bench_xai_metrics", "data": "idsprites", "data_options": options,
            "encoder": "linear map (EfficientNet-Lite0 -> MiniLM, fitted on captions)",
            "seeds": seeds, **record, "chance": chance, "summary": summary, "rows": rows,
            "command": "python benchmarks/bench_xai_metrics.py " + " ".join(sys.argv[1:]),
            "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_xai_metrics.json")
    ap.add_argument("--docs", action="store_true", help="rewrite the docs/benchmarks.md section")
    ap.add_argument("--from-json", action="store_true", help="only rewrite md/docs from --out")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.report.plots import save_png, xai_metrics_figure
    from conceptlab.utils.io import read_json, write_json_atomic, write_text_atomic

    if args.from_json:
        result = read_json(args.out)
    else:
        result = run(args.seeds, args.n_train, args.n_test, args.cache_dir)
        write_json_atomic(args.out, result)
    write_text_atomic(args.out.with_suffix(".md"), markdown(result))
    save_png(xai_metrics_figure(result["summary"], result["chance"],
                                title=f"idsprites through the caption map, seeds "
                                      f"{', '.join(map(str, result['seeds']))}"),
             args.out.with_suffix(".png"))
    if args.docs:
        write_docs(result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
