"""``conceptlab cab``: the concept association bias of an image-text space, and how it grows
with the association in the captions a space was fitted on.

Two modes. With ``encoder`` (any image-text space: ``linear:DIR``, ``hf:`` CLIP/SigLIP for
users with weights): encode the ``twoshapes`` probe (test split: one- and two-shape scenes,
colours uniform) and measure the bias (``cab.measure``). Without: for every association level
p, fit a caption map (``conceptlab align``: EfficientNet-Lite0 features -> MiniLM, ridge and
contrastive, chosen on validation captions) on ``twoshapes`` train scenes whose circles are red
with probability p, and measure each map on the same probe. Writes ``OUT/metrics.json``,
``OUT/map-<p>/`` (each a ``linear:`` encoder) and ``OUT/cab.png``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.cab.measure import answers, cab_rates
from conceptlab.data.base import DataError
from conceptlab.data.twoshapes import COLOURS, TwoShapes, prompt
from conceptlab.runs import Run, open_run
from conceptlab.workflows.align import AlignConfig, run_align
from conceptlab.workflows.prepare import RunConfig, prepare

DEFAULT_LEVELS = (0.5, 0.8, 0.95)


def measure_space(encoder: str, data_options: dict[str, Any], seed: int = 0,
                  cache_dir: str | None = None) -> dict[str, Any]:
    """The bias of one space on the twoshapes probe (test split)."""
    prep = prepare(RunConfig(data="twoshapes", encoder=encoder, data_options=data_options,
                             seed=seed, cache_dir=cache_dir), splits_needed=("test",))
    dataset = prep.dataset
    if not isinstance(dataset, TwoShapes):
        raise DataError("the probe must be twoshapes data")
    scenes = dataset.objects_of(prep.splits.test)
    said = answers(prep.X["test"], scenes, list(COLOURS), prep.encoder.encode_texts, prompt)
    assoc = (str(dataset.options["assoc_shape"]), str(dataset.options["assoc_colour"]))
    return cab_rates(scenes, said, len(COLOURS), assoc=assoc)


def train_association(options: dict[str, Any]) -> float:
    """The share of train circles (the associated shape) drawn in the associated colour."""
    d = TwoShapes(**options)
    objs = [o for s in d.objects_of(d.official_split("train")) for o in s
            if o[0] == d.options["assoc_shape"]]
    return float(np.mean([c == d.options["assoc_colour"] for _, c in objs]))


def run_cab(out: str | Path | None, *, encoder: str | None = None,
            levels: Sequence[float] = DEFAULT_LEVELS, seed: int = 0, n_train: int = 1500,
            n_test: int = 600, contrastive_epochs: int = 40,
            cache_dir: str | None = None) -> dict[str, Any]:
    """Measure one space, or fit one map per association level and measure each."""
    for p in levels:
        if not 0.0 <= float(p) <= 1.0:
            raise DataError(f"association levels must lie in [0, 1], got {p}")
    base: dict[str, Any] = {"seed": seed, "n_train": n_train, "n_test": n_test}
    TwoShapes(**{**base, "n_train": 2, "n_test": 2})  # bad options fail before any work

    def job(run: Run) -> dict[str, Any]:
        stage = run.dir  # None: nothing is written
        t0 = time.perf_counter()
        rows: list[dict[str, Any]] = []
        if encoder is not None:
            rows.append({"encoder": encoder, **measure_space(encoder, base, seed, cache_dir)})
        else:
            if stage is None:
                raise DataError("fitting maps per association level needs an output folder")
            for p in levels:
                opts = {**base, "association": float(p)}
                folder = stage / f"map-{p:g}"
                align = run_align(AlignConfig(data="twoshapes", data_options=opts, seed=seed,
                                              contrastive_epochs=contrastive_epochs,
                                              cache_dir=cache_dir), folder)
                rows.append({"association": float(p),
                             "train_association": train_association(opts),
                             "map": folder.name, "map_method": align["chosen"]["method"],
                             "map_test_R@5": align["test_chosen"].get("R@5"),
                             **measure_space(f"linear:{folder}", opts, seed, cache_dir)})
        metrics = {"command": "cab", "encoder": encoder, "seed": seed, "data_options": base,
                   "rows": rows, "seconds": round(time.perf_counter() - t0, 3)}
        if stage is not None and encoder is None:
            from conceptlab.report.cab_plots import plot_cab

            plot_cab([rows], stage / "cab.png")
        return run.finish(metrics)

    with open_run("cab", out) as run:
        return job(run)
