"""The main job on the embedded default: real Fashion-MNIST images through the offline
ConSE image-text space (EfficientNet-Lite0 + MiniLM), a Sparse-CBM against its baselines on
the same cached embeddings, and an HTML report with the concepts behind decisions.

Sizes are kept small so that a fresh 2-core machine finishes in a few minutes; the
full-split tables are in docs/benchmarks.md (benchmarks/bench_cbm_table.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conceptlab.runs import open_run
from conceptlab.workflows.cbm import (
    comparison_rows,
    save_explanations,
    save_fitted,
)
from conceptlab.workflows.concepts import concept_source, describe_source
from conceptlab.workflows.demo_sprites import as_record, run_sprites
from conceptlab.workflows.prepare import RunConfig, prepare
from conceptlab.workflows.report import build_report
from conceptlab.workflows.story import demo_story
from conceptlab.workflows.variants import variant

DEMO_N_TRAIN = 2000
DEMO_N_VAL = 500
DEMO_N_TEST = 1000
DEMO_IMAGE_SIZE = 224
#: the rows the demo compares: faithful references and our grounded CBMs (the ungrounded
#: low-rank probe is in the benchmark tables, under that name, not here)
DEMO_VARIANTS = (variant("LF-CBM (reference)"), variant("Sparse-CBM l1 (reference)"),
                 variant("l1, scores CBL, grounded"),
                 variant("contrastive, embedding CBL, grounded"))
#: the Sparse-CBM the demo saves and explains: grounded, at NEC = 5 (chosen on validation)
SHOWN_MODEL = "contrastive, embedding CBL, grounded"


def run_demo(out: str | Path, *, n_train: int = DEMO_N_TRAIN, n_val: int = DEMO_N_VAL,
             n_test: int = DEMO_N_TEST, image_size: int = DEMO_IMAGE_SIZE, seed: int = 0,
             cache_dir: str | None = None, with_sprites: bool = True) -> dict[str, Any]:
    """Encode (cached), compare every method, save the Sparse-CBM, and (``with_sprites``) fit
    a grounded CBM on captioned shapes in a caption-trained joint space; write report.html."""
    out = Path(out)
    t0 = time.perf_counter()
    config = RunConfig(data="fashion-mnist", encoder="conse", n_train=n_train, n_val=n_val,
                       n_test=n_test, seed=seed, cache_dir=cache_dir,
                       encoder_options={"image_size": image_size})
    # the whole run is built in a staging folder and swapped in at once, as in `fit`
    with open_run("demo", out) as run:
        out = run.path()
        prep = prepare(config)
        src = concept_source(prep, "auto")
        models: dict[tuple[str, float | None], Any] = {}
        rows = comparison_rows(prep, src, variants=DEMO_VARIANTS, progress_label="demo:",
                               models=models)
        shown = (SHOWN_MODEL, 5.0)
        model = models[shown]
        best = next(r for r in rows if (r["method"], r.get("nec_requested")) == shown)
        save_explanations(model, prep, out, n_examples=None, top=8)  # explanations.json
        metrics = {"command": "demo", "accuracy": best["accuracy"],
                   "method": SHOWN_MODEL,
                   "nec": best["nec"], "mean_active_concepts": best["mean_active_concepts"],
                   "faithfulness": best["faithfulness"],
                   "rows": rows, **prep.base_metrics(), "concepts": describe_source(src),
                   "seconds": round(time.perf_counter() - t0, 3)}
        sprite_rows: list[dict[str, Any]] = []
        if with_sprites:
            sprite_rows, sprite_section = run_sprites(seed=seed, cache_dir=cache_dir)
            metrics["idsprites_rows"] = sprite_rows
            metrics["extra_sections"] = [as_record(sprite_section)]
        vs = sprite_rows[0].get("vs_nonsense") if sprite_rows else None
        metrics["story"] = demo_story(
            best, sprite_rows, None if vs is None else (vs["difference"], *vs["interval"]))
        metrics["note"] = " ".join(metrics["story"])
        save_fitted(model, prep, out)
        metrics = run.finish(metrics)
        build_report([out], shown_as=[run.out])  # the self-contained report of this run
        return metrics
